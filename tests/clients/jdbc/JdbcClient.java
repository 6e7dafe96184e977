// PgJDBC (Debian libpostgresql-jdbc-java) against lalo. One line per check:
// `ok jdbc: <check>` or `FAIL jdbc: <check>: <error>`; exit status 1 if any check failed.
//
//   javac -cp /usr/share/java/postgresql.jar -d /tmp/jdbc tests/clients/jdbc/JdbcClient.java
//   java -cp /usr/share/java/postgresql.jar:/tmp/jdbc JdbcClient 127.0.0.1 6432 admin admin lalo

import java.math.BigDecimal;
import java.sql.*;
import java.time.LocalDate;
import java.time.LocalDateTime;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;
import java.util.*;

public class JdbcClient {
    static final String C = "jdbc";
    static int passed = 0, failed = 0;

    static final String TYPED_SQL =
        "SELECT true AS b, CAST(1 AS SMALLINT) AS i2, CAST(2 AS INT) AS i4, "
        + "CAST(3000000000 AS BIGINT) AS i8, CAST(1.5 AS REAL) AS f4, CAST(2.25 AS DOUBLE PRECISION) AS f8, "
        + "CAST(12.34 AS NUMERIC(10,2)) AS num, 'hé' AS t, CAST('v' AS VARCHAR) AS vc, "
        + "DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 13:14:15.123456' AS ts, "
        + "CAST('2024-02-29 13:14:15.123456+00' AS TIMESTAMPTZ) AS tstz, "
        + "INTERVAL '1 day 2 hours' AS iv, decode('0102ff', 'hex') AS by";
    static final Set<String> TPCH_TABLES = new TreeSet<>(Arrays.asList(
        "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"));
    static final List<String> NATION_COLUMNS = Arrays.asList("n_nationkey", "n_name", "n_regionkey", "n_comment");

    interface Check { void run() throws Exception; }

    static void check(String name, Check body) {
        try {
            body.run();
            passed++;
            System.out.println("ok " + C + ": " + name);
        } catch (Throwable e) {
            failed++;
            String state = (e instanceof SQLException && ((SQLException) e).getSQLState() != null)
                ? " [" + ((SQLException) e).getSQLState() + "]" : "";
            String msg = String.valueOf(e.getMessage()).replaceAll("\\s*\\n\\s*", " | ");
            if (msg.length() > 600) msg = msg.substring(0, 600) + "...";
            System.out.println("FAIL " + C + ": " + name + ": " + e.getClass().getSimpleName() + state + ": " + msg);
        }
        System.out.flush();
    }

    static void eq(Object want, Object got, String what) {
        if (!Objects.equals(want, got)) {
            throw new AssertionError(what + ": want " + want + ", got " + got);
        }
    }

    static void sqlState(String want, Check body) throws Exception {
        try {
            body.run();
        } catch (SQLException e) {
            eq(want, e.getSQLState(), "SQLSTATE (" + e.getMessage() + ")");
            return;
        }
        throw new AssertionError("statement succeeded; want SQLSTATE " + want);
    }

    static String oneString(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            if (!rs.next()) throw new AssertionError("no row from " + sql);
            return rs.getString(1);
        }
    }

    /** Checks every column of TYPED_SQL through the accessor a Java user would call. */
    static void checkTypedRow(ResultSet rs) throws Exception {
        if (!rs.next()) throw new AssertionError("no row");
        List<String> problems = new ArrayList<>();
        Map<String, Object[]> cases = new LinkedHashMap<>();
        cases.put("b", new Object[] {rs.getBoolean("b"), true});
        cases.put("i2", new Object[] {rs.getShort("i2"), (short) 1});
        cases.put("i4", new Object[] {rs.getInt("i4"), 2});
        cases.put("i8", new Object[] {rs.getLong("i8"), 3000000000L});
        cases.put("f4", new Object[] {rs.getFloat("f4"), 1.5f});
        cases.put("f8", new Object[] {rs.getDouble("f8"), 2.25d});
        cases.put("num", new Object[] {rs.getBigDecimal("num"), new BigDecimal("12.34")});
        cases.put("t", new Object[] {rs.getString("t"), "hé"});
        cases.put("vc", new Object[] {rs.getString("vc"), "v"});
        cases.put("d", new Object[] {rs.getObject("d", LocalDate.class), LocalDate.of(2024, 2, 29)});
        cases.put("ts", new Object[] {rs.getObject("ts", LocalDateTime.class),
            LocalDateTime.of(2024, 2, 29, 13, 14, 15, 123456000)});
        OffsetDateTime tstz = rs.getObject("tstz", OffsetDateTime.class);
        cases.put("tstz", new Object[] {tstz == null ? null : tstz.toInstant(),
            OffsetDateTime.of(2024, 2, 29, 13, 14, 15, 123456000, ZoneOffset.UTC).toInstant()});
        Object iv = rs.getObject("iv");
        cases.put("iv", new Object[] {iv == null ? null : iv.getClass().getName() + " " + iv,
            "org.postgresql.util.PGInterval " + new org.postgresql.util.PGInterval(0, 0, 1, 2, 0, 0)});
        cases.put("by", new Object[] {Arrays.toString(rs.getBytes("by")), Arrays.toString(new byte[] {1, 2, -1})});
        Object numObj = rs.getObject("num");
        cases.put("num getObject class", new Object[] {numObj == null ? null : numObj.getClass().getName(),
            "java.math.BigDecimal"});
        Object i8Obj = rs.getObject("i8");
        cases.put("i8 getObject class", new Object[] {i8Obj == null ? null : i8Obj.getClass().getName(),
            "java.lang.Long"});
        for (Map.Entry<String, Object[]> e : cases.entrySet()) {
            Object got = e.getValue()[0], want = e.getValue()[1];
            if (!Objects.equals(want, got)) problems.add(e.getKey() + ": want " + want + ", got " + got);
        }
        if (!problems.isEmpty()) throw new AssertionError(String.join("; ", problems));
    }

    public static void main(String[] args) throws Exception {
        String host = args.length > 0 ? args[0] : "127.0.0.1";
        String port = args.length > 1 ? args[1] : "6432";
        String user = args.length > 2 ? args[2] : "admin";
        String password = args.length > 3 ? args[3] : "admin";
        String db = args.length > 4 ? args[4] : "lalo";
        String url = "jdbc:postgresql://" + host + ":" + port + "/" + db;
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("connectTimeout", "10");
        props.setProperty("socketTimeout", "60");

        Connection[] holder = new Connection[1];
        check("connect", () -> holder[0] = DriverManager.getConnection(url, props));
        Connection conn = holder[0];
        if (conn == null) {
            finish();
            return;
        }

        check("DatabaseMetaData product name and version", () -> {
            DatabaseMetaData md = conn.getMetaData();
            eq("PostgreSQL", md.getDatabaseProductName(), "product name");
            if (md.getDatabaseMajorVersion() < 9) {
                throw new AssertionError("major version " + md.getDatabaseMajorVersion());
            }
        });

        check("DatabaseMetaData.getSchemas() includes tpch", () -> {
            List<String> schemas = new ArrayList<>();
            try (ResultSet rs = conn.getMetaData().getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            if (!schemas.contains("tpch")) throw new AssertionError("tpch not in " + schemas);
        });

        check("DatabaseMetaData.getTables(null, \"tpch\", \"%\", {\"TABLE\"}) = the 8 TPC-H tables", () -> {
            Set<String> tables = new TreeSet<>();
            try (ResultSet rs = conn.getMetaData().getTables(null, "tpch", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            eq(TPCH_TABLES, tables, "tables");
        });

        check("DatabaseMetaData.getColumns(null, \"tpch\", \"nation\", \"%\"): names and types", () -> {
            List<String> names = new ArrayList<>();
            Map<String, Integer> types = new HashMap<>();
            try (ResultSet rs = conn.getMetaData().getColumns(null, "tpch", "nation", "%")) {
                while (rs.next()) {
                    names.add(rs.getString("COLUMN_NAME"));
                    types.put(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"));
                }
            }
            eq(NATION_COLUMNS, names, "columns");
            int key = types.get("n_nationkey");
            if (key != Types.BIGINT && key != Types.INTEGER) throw new AssertionError("n_nationkey DATA_TYPE " + key);
            int name = types.get("n_name");
            if (name != Types.VARCHAR && name != Types.CHAR) throw new AssertionError("n_name DATA_TYPE " + name);
        });

        check("Statement.executeQuery SELECT count(*) FROM tpch.nation = 25", () -> {
            try (Statement st = conn.createStatement();
                 ResultSet rs = st.executeQuery("SELECT count(*) FROM tpch.nation")) {
                rs.next();
                eq(25L, rs.getLong(1), "count");
            }
        });

        check("PreparedStatement parameters: setInt, setLong, setString, setDate, setBigDecimal", () -> {
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_name FROM tpch.nation WHERE n_nationkey = ?")) {
                ps.setInt(1, 7);
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq("GERMANY", rs.getString(1), "setInt(7)"); }
                ps.setLong(1, 8L);
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq("INDIA", rs.getString(1), "setLong(8)"); }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT n_nationkey FROM tpch.nation WHERE n_name = ?")) {
                ps.setString(1, "GERMANY");
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq(7L, rs.getLong(1), "setString"); }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM tpch.orders WHERE o_orderdate = ?")) {
                ps.setDate(1, java.sql.Date.valueOf("1995-09-16"));
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq(16L, rs.getLong(1), "setDate"); }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM tpch.orders WHERE o_totalprice > ?")) {
                ps.setBigDecimal(1, new BigDecimal("200000.50"));
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq(3810L, rs.getLong(1), "setBigDecimal"); }
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM tpch.orders WHERE o_orderkey < ?")) {
                ps.setLong(1, 3000000000L);
                try (ResultSet rs = ps.executeQuery()) { rs.next(); eq(15000L, rs.getLong(1), "setLong(3000000000)"); }
            }
        });

        check("PreparedStatement parameters round-trip (SELECT ?, ?, ?, CAST(? AS DATE), ?)", () -> {
            // setDate binds an untyped parameter (PgJDBC leaves date vs timestamp to the server), hence the CAST.
            try (PreparedStatement ps = conn.prepareStatement("SELECT ? AS i, ? AS big, ? AS t, CAST(? AS DATE) AS d, ? AS n")) {
                ps.setInt(1, 7);
                ps.setLong(2, 3000000000L);
                ps.setString(3, "hé");
                ps.setDate(4, java.sql.Date.valueOf("2024-02-29"));
                ps.setBigDecimal(5, new BigDecimal("12.34"));
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    List<String> problems = new ArrayList<>();
                    Object[][] cases = {
                        {rs.getObject(1), 7}, {rs.getObject(2), 3000000000L}, {rs.getObject(3), "hé"},
                        {rs.getObject(4), java.sql.Date.valueOf("2024-02-29")}, {rs.getObject(5), new BigDecimal("12.34")}};
                    for (int i = 0; i < cases.length; i++) {
                        Object got = cases[i][0], want = cases[i][1];
                        if (!Objects.equals(want, got)) {
                            problems.add("column " + (i + 1) + ": want " + want.getClass().getSimpleName() + " " + want
                                + ", got " + (got == null ? "null" : got.getClass().getSimpleName() + " " + got)
                                + " (type " + rs.getMetaData().getColumnTypeName(i + 1) + ")");
                        }
                    }
                    if (!problems.isEmpty()) throw new AssertionError(String.join("; ", problems));
                }
            }
        });

        check("PreparedStatement executed 7 times (switches to a named server statement, binary)", () -> {
            try (PreparedStatement ps = conn.prepareStatement(
                     "SELECT n_name, n_regionkey FROM tpch.nation WHERE n_nationkey = ?")) {
                for (int i = 0; i < 7; i++) {
                    ps.setInt(1, i % 2 == 0 ? 7 : 8);
                    try (ResultSet rs = ps.executeQuery()) {
                        if (!rs.next()) throw new AssertionError("no row at execution " + (i + 1));
                        eq(i % 2 == 0 ? "GERMANY" : "INDIA", rs.getString(1), "n_name at execution " + (i + 1));
                        eq(i % 2 == 0 ? 3L : 2L, rs.getLong(2), "n_regionkey at execution " + (i + 1));
                    }
                }
            }
        });

        check("ResultSet of every type, text format (Statement)", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(TYPED_SQL)) {
                checkTypedRow(rs);
            }
        });

        check("ResultSetMetaData column type names of every type", () -> {
            try (Statement st = conn.createStatement(); ResultSet rs = st.executeQuery(TYPED_SQL)) {
                ResultSetMetaData md = rs.getMetaData();
                List<String> got = new ArrayList<>();
                for (int i = 1; i <= md.getColumnCount(); i++) got.add(md.getColumnLabel(i) + ":" + md.getColumnTypeName(i));
                eq(Arrays.asList("b:bool", "i2:int2", "i4:int4", "i8:int8", "f4:float4", "f8:float8", "num:numeric",
                    "t:text", "vc:varchar", "d:date", "ts:timestamp", "tstz:timestamptz", "iv:interval", "by:bytea"),
                    got, "column:type");
            }
        });

        check("ResultSet of every type, binary format (prepareThreshold=-1)", () -> {
            Properties bin = new Properties();
            bin.putAll(props);
            bin.setProperty("prepareThreshold", "-1");
            try (Connection c2 = DriverManager.getConnection(url, bin);
                 PreparedStatement ps = c2.prepareStatement(TYPED_SQL);
                 ResultSet rs = ps.executeQuery()) {
                checkTypedRow(rs);
            }
        });

        check("setAutoCommit(false) + setFetchSize(1000) streams 15000 tpch.orders rows (portal)", () -> {
            conn.setAutoCommit(false);
            try (Statement st = conn.createStatement()) {
                st.setFetchSize(1000);
                long n = 0;
                try (ResultSet rs = st.executeQuery("SELECT o_orderkey FROM tpch.orders")) {
                    while (rs.next()) n++;
                }
                eq(15000L, n, "rows");
                conn.commit();
            } finally {
                try { conn.rollback(); } catch (SQLException ignored) { }
                conn.setAutoCommit(true);
            }
        });

        check("transaction: setAutoCommit(false), query, rollback, commit", () -> {
            conn.setAutoCommit(false);
            try {
                eq("5", oneString(conn, "SELECT count(*) FROM tpch.region"), "regions");
                conn.rollback();
                eq("25", oneString(conn, "SELECT count(*) FROM tpch.nation"), "nations");
                conn.commit();
            } finally {
                conn.setAutoCommit(true);
            }
        });

        check("CREATE TABLE refused with SQLSTATE 0A000, connection usable after", () -> {
            sqlState("0A000", () -> {
                try (Statement st = conn.createStatement()) { st.executeUpdate("CREATE TABLE tpch.clients_probe (a INT)"); }
            });
            eq("5", oneString(conn, "SELECT count(*) FROM tpch.region"), "regions after error");
        });

        check("unknown table -> SQLSTATE 42P01", () -> sqlState("42P01", () -> oneString(conn, "SELECT * FROM tpch.no_such_table")));

        check("wrong password rejected with SQLSTATE 28P01", () -> {
            Properties bad = new Properties();
            bad.putAll(props);
            bad.setProperty("password", "definitely-wrong");
            sqlState("28P01", () -> DriverManager.getConnection(url, bad).close());
        });

        try { conn.close(); } catch (SQLException ignored) { }
        finish();
    }

    static void finish() {
        System.out.println("# jdbc: " + passed + " ok, " + failed + " failed");
        System.exit(failed > 0 ? 1 : 0);
    }
}
