#!/usr/bin/env node
// node-postgres (npm `pg`) against lalo. One line per check: `ok node-pg: <check>` or
// `FAIL node-pg: <check>: <error>`; exit status 1 if any check failed.
//
//   cd tests/clients/node && npm install && node node_pg.js [host] [port] [user] [password] [database]
//
// Arguments may also come from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE
// (defaults 127.0.0.1, 6432, admin, admin, lalo).
'use strict';

const assert = require('node:assert/strict');
const pg = require('pg');

const [host, port, user, password, database] = [
  process.argv[2] || process.env.PGHOST || '127.0.0.1',
  Number(process.argv[3] || process.env.PGPORT || 6432),
  process.argv[4] || process.env.PGUSER || 'admin',
  process.argv[5] || process.env.PGPASSWORD || 'admin',
  process.argv[6] || process.env.PGDATABASE || 'lalo',
];
const config = { host, port, user, password, database, connectionTimeoutMillis: 10000 };
const CLIENT = 'node-pg';
const CHECK_TIMEOUT_MS = 60000;

const TYPED_SQL =
  "SELECT true AS b, CAST(1 AS SMALLINT) AS i2, CAST(2 AS INT) AS i4, " +
  "CAST(3000000000 AS BIGINT) AS i8, CAST(1.5 AS REAL) AS f4, CAST(2.25 AS DOUBLE PRECISION) AS f8, " +
  "CAST(12.34 AS NUMERIC(10,2)) AS num, 'hé' AS t, CAST('v' AS VARCHAR) AS vc, " +
  "DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, " +
  "CAST('2024-02-29 13:14:15.123456+00' AS TIMESTAMPTZ) AS tstz, " +
  "INTERVAL '1 day 2 hours' AS iv, decode('0102ff', 'hex') AS by";
const EUROPE = ['FRANCE', 'GERMANY', 'ROMANIA', 'RUSSIA', 'UNITED KINGDOM'];

let passed = 0;
let failed = 0;

async function check(name, fn) {
  let timer;
  try {
    await Promise.race([
      fn(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS / 1000}s`)), CHECK_TIMEOUT_MS);
      }),
    ]);
    passed += 1;
    console.log(`ok ${CLIENT}: ${name}`);
  } catch (err) {
    failed += 1;
    const code = err && err.code ? ` [${err.code}]` : '';
    const msg = String((err && err.message) || err).replace(/\s*\n\s*/g, ' | ').slice(0, 600);
    console.log(`FAIL ${CLIENT}: ${name}: ${(err && err.name) || 'Error'}${code}: ${msg}`);
  } finally {
    clearTimeout(timer);
  }
}

// node-pg's default parsers: what a node user gets for each type in text format.
function checkTypedRow(row) {
  const problems = [];
  const expect = (col, ok, want) => {
    if (!(col in row)) problems.push(`${col}: missing column (got ${Object.keys(row)})`);
    else if (!ok(row[col])) problems.push(`${col}: want ${want}, got ${typeof row[col]} ${JSON.stringify(row[col])}`);
  };
  const pad = (n) => String(n).padStart(2, '0');
  const localDate = (v) => v instanceof Date && `${v.getFullYear()}-${pad(v.getMonth() + 1)}-${pad(v.getDate())}`;
  expect('b', (v) => v === true, 'boolean true');
  expect('i2', (v) => v === 1, 'number 1');
  expect('i4', (v) => v === 2, 'number 2');
  expect('i8', (v) => v === '3000000000', "string '3000000000' (int8 is parsed as a string)");
  expect('f4', (v) => v === 1.5, 'number 1.5');
  expect('f8', (v) => v === 2.25, 'number 2.25');
  expect('num', (v) => v === '12.34', "string '12.34' (numeric is parsed as a string)");
  expect('t', (v) => v === 'hé', "string 'hé'");
  expect('vc', (v) => v === 'v', "string 'v'");
  // date and timestamp without time zone are read as local time
  expect('d', (v) => localDate(v) === '2024-02-29', 'Date at local 2024-02-29');
  expect('ts', (v) => v instanceof Date && localDate(v) === '2024-02-29' && v.getHours() === 13 &&
    v.getMinutes() === 14 && v.getSeconds() === 15 && v.getMilliseconds() === 123, 'Date 2024-02-29 13:14:15.123 local');
  expect('tstz', (v) => v instanceof Date && v.toISOString() === '2024-02-29T13:14:15.123Z', 'Date 2024-02-29T13:14:15.123Z');
  expect('iv', (v) => v && typeof v === 'object' && v.days === 1 && v.hours === 2 && !v.minutes && !v.seconds,
    'PostgresInterval {days: 1, hours: 2}');
  expect('by', (v) => Buffer.isBuffer(v) && v.equals(Buffer.from([1, 2, 255])), 'Buffer <01 02 ff>');
  if (problems.length) throw new Error(problems.join('; '));
}

async function main() {
  const client = new pg.Client(config);
  let connected = false;
  await check('connect', async () => {
    await client.connect();
    connected = true;
  });
  if (!connected) return;

  await check('simple query SELECT count(*) FROM tpch.nation = 25', async () => {
    const res = await client.query('SELECT count(*) FROM tpch.nation');
    assert.equal(Number(Object.values(res.rows[0])[0]), 25);
  });

  await check("SELECT count(*) result column is named 'count' (rows[0].count)", async () => {
    const res = await client.query('SELECT count(*) FROM tpch.nation');
    assert.deepEqual(res.fields.map((f) => f.name), ['count']);
    assert.equal(res.rows[0].count, '25');
  });

  await check('parameter $1 (extended protocol) WHERE n_nationkey = $1 -> GERMANY', async () => {
    const res = await client.query('SELECT n_name FROM tpch.nation WHERE n_nationkey = $1', [7]);
    assert.deepEqual(res.rows, [{ n_name: 'GERMANY' }]);
  });

  await check('parameters of several types (int, bigint, text, date, numeric) filter tpch tables', async () => {
    let res = await client.query('SELECT n_nationkey FROM tpch.nation WHERE n_name = $1', ['GERMANY']);
    assert.deepEqual(res.rows.map((r) => Number(r.n_nationkey)), [7]);
    res = await client.query('SELECT n_name FROM tpch.nation WHERE n_nationkey = $1', ['7']);
    assert.deepEqual(res.rows, [{ n_name: 'GERMANY' }]);
    res = await client.query('SELECT count(*) AS n FROM tpch.orders WHERE o_orderkey < $1', [3000000000n.toString()]);
    assert.equal(Number(res.rows[0].n), 15000);
    res = await client.query('SELECT count(*) AS n FROM tpch.orders WHERE o_orderdate = $1', ['1995-09-16']);
    assert.equal(Number(res.rows[0].n), 16);
    res = await client.query('SELECT count(*) AS n FROM tpch.orders WHERE o_totalprice > $1', ['200000.50']);
    assert.equal(Number(res.rows[0].n), 3810);
  });

  await check('typed parameters round-trip (SELECT $1::int, $2::bigint, $3::text, $4::date, $5::numeric)', async () => {
    const res = await client.query(
      'SELECT $1::int AS i, $2::bigint AS big, $3::text AS t, $4::date AS d, $5::numeric AS n',
      [7, '3000000000', 'hé', '2024-02-29', '12.34']);
    const r = res.rows[0];
    assert.equal(r.i, 7);
    assert.equal(r.big, '3000000000');
    assert.equal(r.t, 'hé');
    assert.ok(r.d instanceof Date && r.d.getFullYear() === 2024 && r.d.getMonth() === 1 && r.d.getDate() === 29,
      `d = ${r.d}`);
    assert.equal(r.n, '12.34');
  });

  await check('JS Date parameter compared with a timestamptz', async () => {
    const res = await client.query(
      "SELECT CAST('2024-02-29 13:14:15+00' AS TIMESTAMPTZ) = $1 AS same", [new Date(Date.UTC(2024, 1, 29, 13, 14, 15))]);
    assert.equal(res.rows[0].same, true);
  });

  await check('typed values, text format (every type)', async () => {
    const res = await client.query(TYPED_SQL);
    checkTypedRow(res.rows[0]);
  });

  await check('typed values through the extended protocol (every type)', async () => {
    const res = await client.query({ text: TYPED_SQL + ' WHERE $1 = 1', values: [1] });
    checkTypedRow(res.rows[0]);
  });

  await check('named prepared statement reused (name: ...)', async () => {
    const q = { name: 'lalo_nation_by_key', text: 'SELECT n_name FROM tpch.nation WHERE n_nationkey = $1' };
    const names = [];
    for (const key of [7, 8, 7]) {
      const res = await client.query({ ...q, values: [key] });
      names.push(res.rows[0].n_name);
    }
    assert.deepEqual(names, ['GERMANY', 'INDIA', 'GERMANY']);
  });

  await check("rowMode 'array' join over tpch.nation and tpch.region", async () => {
    const res = await client.query({
      text: 'SELECT n.n_name FROM tpch.nation n JOIN tpch.region r ON n.n_regionkey = r.r_regionkey ' +
        'WHERE r.r_name = $1 ORDER BY n.n_name',
      values: ['EUROPE'],
      rowMode: 'array',
    });
    assert.deepEqual(res.rows.map((r) => r[0]), EUROPE);
  });

  await check('fetch 15000 tpch.orders rows', async () => {
    const res = await client.query('SELECT o_orderkey, o_totalprice, o_orderdate FROM tpch.orders');
    assert.equal(res.rows.length, 15000);
    assert.equal(res.rowCount, 15000);
  });

  await check('NULLs come back as null', async () => {
    const res = await client.query('SELECT CAST(NULL AS INT) AS a, CAST(NULL AS TEXT) AS b, CAST(NULL AS DATE) AS c');
    assert.deepEqual(res.rows[0], { a: null, b: null, c: null });
  });

  await check('transaction BEGIN / query / COMMIT and ROLLBACK', async () => {
    await client.query('BEGIN');
    const res = await client.query('SELECT count(*) AS n FROM tpch.region');
    assert.equal(Number(res.rows[0].n), 5);
    await client.query('COMMIT');
    await client.query('BEGIN');
    await client.query('SELECT 1');
    await client.query('ROLLBACK');
  });

  await check('CREATE TABLE refused with SQLSTATE 0A000, connection usable after', async () => {
    await assert.rejects(client.query('CREATE TABLE tpch.clients_probe (a INT)'), (err) => {
      assert.equal(err.code, '0A000');
      return true;
    });
    const res = await client.query('SELECT count(*) AS n FROM tpch.region');
    assert.equal(Number(res.rows[0].n), 5);
  });

  await check('unknown table -> SQLSTATE 42P01', async () => {
    await assert.rejects(client.query('SELECT * FROM tpch.no_such_table'), (err) => {
      assert.equal(err.code, '42P01');
      return true;
    });
  });

  await client.end().catch(() => {});

  await check('Pool: two concurrent clients', async () => {
    const pool = new pg.Pool({ ...config, max: 2 });
    try {
      const [a, b] = await Promise.all([
        pool.query('SELECT n_name FROM tpch.nation WHERE n_nationkey = $1', [7]),
        pool.query('SELECT n_name FROM tpch.nation WHERE n_nationkey = $1', [8]),
      ]);
      assert.deepEqual([a.rows[0].n_name, b.rows[0].n_name], ['GERMANY', 'INDIA']);
    } finally {
      await pool.end();
    }
  });

  await check('wrong password rejected with SQLSTATE 28P01', async () => {
    const bad = new pg.Client({ ...config, password: 'definitely-wrong' });
    await assert.rejects(bad.connect(), (err) => {
      assert.equal(err.code, '28P01');
      return true;
    });
    await bad.end().catch(() => {});
  });
}

main()
  .catch((err) => {
    failed += 1;
    console.log(`FAIL ${CLIENT}: client run: ${(err && err.stack) || err}`);
  })
  .finally(() => {
    console.log(`# node-pg: ${passed} ok, ${failed} failed`);
    process.exit(failed ? 1 : 0);
  });
