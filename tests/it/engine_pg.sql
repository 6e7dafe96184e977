-- Statements lalo's own engine answers (constants and VALUES in the embedded database), each
-- replayed through lalo and on PostgreSQL by differential.rs: every one must come back identical.
select 1/2
select 7 % -3
select -7 / 2
select 0.1+0.2
select sum(x) from (values (0.1),(0.2)) t(x)
select x from (values (1),(1),(2)) t(x) intersect all select x from (values (1),(1),(1)) s(x) order by 1
select x from (values (1),(1),(2)) t(x) except all select x from (values (1)) s(x) order by 1
select x from (values (1),(1),(2)) t(x) except select x from (values (3)) s(x) order by 1
select 'abc' like 'a\_c', 'a_c' like 'a\_c'
select 'abc' similar to 'a(b|c)c'
select substr('hello', 0, 3), substring('hello' from 2 for 2)
select position('l' in 'hello'), strpos('hello','l')
select trim('  x  '), btrim('xxaxx','x'), lpad('ab', 5, '*'), rpad('ab',1)
select 'a' || null, concat('a', null, 'b'), concat_ws(',', 'a', null, 'c')
select split_part('a,b,c', ',', 2), split_part('a,b,c', ',', -1)
select date '2024-01-31' + 1, date '2024-03-01' - date '2024-02-01'
select cast(1.5 as int), cast(2.5 as int), cast(-1.5 as int)
select 1.5::int, 2.5::bigint
select '10'::int + 1, '2024-01-01'::date
select null = null, null is null, 1 in (1, null), 2 in (1, null), 2 not in (1, null)
select coalesce(null, 2), nullif(1, 1), greatest(1, null, 3), least(2, null)
select count(*), count(x), sum(x), min(x) from (values (null::int)) t(x)
select string_agg(x, ',' order by x) from (values ('b'),('a')) t(x)
select array_agg(x order by x) from (values (2),(1)) t(x)
select array_agg(x + 1 order by c), array_agg(x + 2 order by c desc) from (values (1, 3), (2, 1), (3, 2)) t(x, c)
select array_agg(x * 2 order by c desc), sum(x - 1) from (values (1, 3), (2, 1), (3, 2)) t(x, c)
select array[1,2,3], array_length(array[1,2],1), cardinality(array[1,2])
select (array[1,2,3])[2], (array[1,2,3])[0]
select generate_series(1,3)
select * from generate_series(1,3)
select * from generate_series(1,null)
select md5('a'), sha256('a'::bytea)
select true::text, 1::boolean, 't'::boolean
select 123.456::numeric(5,1)
select '1e3'::float8, 'NaN'::float8, 'Infinity'::float8
select 1::float8/3
select 0.1::float4
select 1e-7::float8, 123456789012345678::float8
select round(123.456, -1), round(1.005, 2), trunc(1.99)
select x, row_number() over (order by x) from (values (3),(1),(2)) t(x) order by x
select x, rank() over (order by x), dense_rank() over (order by x) from (values (1),(1),(2)) t(x) order by 1
select x, lag(x) over (order by x), sum(x) over (order by x) from (values (1),(1),(2)) t(x) order by 1
select percentile_cont(0.5) within group (order by x) from (values (1),(2),(3),(4)) t(x)
select bool_and(x), bool_or(x) from (values (true),(false)) t(x)
select x::text from (values (1.0::float8),(2.5::float8)) t(x)
select 1::float8, 2.5::float4, 1e20::float8, 1e-5::float8
select 100000000000000000000::numeric
select interval '1 day 2 hours', interval '90 minutes', interval '1 year 2 months'
select age(timestamp '2024-01-01', timestamp '2023-01-15')
select make_date(2024, 2, 29), date_part('month', date '2024-02-29')
select to_timestamp(0)
select '2024-01-01 10:00:00+02'::timestamptz
select '2024-01-01 10:00:00'::timestamp::text
select current_date - 1 > date '2000-01-01'
select case when 1=1 then 'a' else 1::text end
select case 2 when 1 then 'x' end
select regexp_replace('abc', 'b', 'X'), regexp_match('abc', 'b')
select 'abc' ~ 'b', 'abc' ~* 'B', 'abc' !~ 'z'
select left('hello', 2), right('hello', 2), reverse('abc'), repeat('ab', 2), replace('aXa','X','y')
select initcap('hello world'), ascii('A'), chr(65), translate('abc','ab','xy')
select x from (values (1),(2)) t(x) union select 1 order by 1
select distinct on (x) x, y from (values (1,'b'),(1,'a'),(2,'c')) t(x,y) order by x, y
select x from (values ('B'),('a'),('C')) t(x) order by x
select x from (values (null),(1),(2)) t(x) order by x desc
select x from (values (null),(1),(2)) t(x) order by x
select 'a' < 'B', 'a' < 'b'
select length(1234::text), 1234::text || 'x'
select 1 where 'abc' ilike 'A%'
select s, s like '%pecial%requests%', s not like '%special%requests', s like 'sp%req%s', s like '50\%%', s like '%\%%off' from (values ('special requests'), ('requests special'), ('special deposits requests!'), ('50% off'), ('50 %off'), (''), (null)) t(s) order by 1
select s, s ilike '%SPECIAL%', s ilike '%a%C%', s not ilike 'x%y%z' from (values ('Special'), ('xAbcyz'), ('ABC'), ('xyz'), (null)) t(s) order by 1
select count(distinct x) from (values (1),(1),(null)) t(x)
select sum(x)/count(x) from (values (1),(2)) t(x)
select x / 3 from (values (10::bigint)) t(x)
select sum(x::numeric) from (values (1.1),(2.2)) t(x)
select json_build_object('a', 1)
select x::int from (values (2.5),(3.5),(-2.5),(1.49)) t(x)
select x::int from (values (2.5::float8),(3.5::float8),(-2.5::float8),(0.5::float8),(1.5::float8)) t(x)
select x::bigint, x::smallint from (values (2.5::float8)) t(x)
select generate_series(1,3), 'a'
select json_build_object('a', 1, 'b', 'x', 'c', null, 'd', true, 'e', 1.50, 'f', 2.5::float8)
select json_build_array(1, 'x', null)
select x from (values (1),(1),(2)) t(x) except all select 1
select x from (values (1),(1),(2)) t(x) intersect all select 1
select x, x::text from (values (1.0::float8), (1e20::float8), ('NaN'::float8)) t(x)
select x, x::text, t::text from (values (1.0::float8, timestamp '2024-01-01 10:00:00'), (1e20::float8, timestamp '2024-01-01 10:00:00.5'), ('NaN'::float8, null)) s(x, t)
select 1.0::float8::text, 'Infinity'::float8::text, '2024-01-01 10:00:00'::timestamp::text
select x from (values (1),(1),(2)) t(x) except all select 1
select x from (values (1),(1),(2),(null),(null)) t(x) intersect all select x from (values (1),(null),(3)) s(x) order by 1
select x, y from (values (1,'a'),(1,'a'),(1,'a'),(2,'b')) t(x,y) except all select x, y from (values (1,'a'),(2,'b'),(2,'b')) s(x,y) order by 1
select x from (values (1),(1),(2)) t(x) except select 1
select x from (values (1),(1),(3)) t(x) intersect select x from (values (1),(1)) s(x)
select count(*) from (select x from (values (1),(1),(2)) t(x) except all select 1) q
select a.x from (values (1),(1)) a(x) where exists (select 1 from (values (1)) b(y) where b.y = a.x) except all select 1
select 2147483647 + 0, 2147483648, 3 * -5, 10 - 2147483647
select x + 1 from (values (2147483646), (1)) t(x) order by 1
select x * 2 from (values (1), (3000000000)) t(x) order by 1
select x, x + 1 from (values (null), (1)) t(x) order by 1
select array_position(array[5,6,7], 6), array_ndims(array[1,2]), array_length(array[1,2,3], 1) + 1
-- date_part is double precision, EXTRACT numeric with the field's scale; fractions of seconds kept
select date_part('second', timestamp '2024-01-01 00:00:12.5'), extract(second from timestamp '2024-01-01 00:00:12.5')
select extract(epoch from timestamp '2024-01-01 00:00:12.5'), extract(epoch from date '2024-02-29'), date_part('epoch', date '2024-02-29')
select extract(milliseconds from timestamp '2024-01-01 00:00:12.5'), extract(microseconds from timestamp '2024-01-01 00:00:12.5'), date_part('ms', timestamp '2024-01-01 00:00:12.5')
select extract(epoch from interval '1 year 1 month 1 day 1.5 seconds'), extract(second from interval '1 min 12.5 s'), extract(hour from interval '30 hours'), date_part('epoch', interval '2 years')
select extract(year from d), extract(dow from d), extract(doy from d), date_part('quarter', d) from (values (date '2024-02-29'), (date '1999-12-31')) t(d)
select date_part('hour', date '2024-01-01'), extract(minute from timestamp '2024-01-01 10:11:12')
-- trunc of a numeric stays numeric at PostgreSQL's scale
select trunc(1.99), trunc(-1.99), trunc(1.999, 2), trunc(1.9, 3), trunc(123.456, -1), trunc(5), trunc(2.5::float8)
select trunc(x, 1) from (values (1.25), (-3.99), (null)) t(x)
-- correlated subqueries over constants
select x from (values (1), (2), (3)) a(x) where exists (select 1 from (values (2), (3)) b(y) where b.y = a.x) order by 1
select x from (values (1), (2)) a(x) where x not in (select y from (values (2)) b(y) where b.y > a.x - 5) order by 1
-- NUMERIC division, averages, variances and sqrt: PostgreSQL's digits and each row's own display scale
select 1/3.0, 5::numeric/5, 6::numeric/5, 10.5/2, 1.0/7*7, -2::numeric/3, 0::numeric/3
select x / y, x / y * 100, round(x / y, 2), x / y + 1 from (values (1.0, 3), (6.0, 5), (1.00, 30000), (-7.5, 2)) t(x, y)
select avg(x), var_samp(x), stddev_samp(x), var_pop(x), stddev_pop(x), sum(x) / count(x) from (values (1.50), (2.25), (3.10)) t(x)
select avg(x), stddev(x), variance(x), sum(x) from (values (1), (2), (4)) t(x)
select g, avg(x) from (values (1, 1.5), (1, 2.5), (2, 10.0), (2, 20.5), (3, 0.001)) t(g, x) group by g order by g
select g, avg(x) from (values (1, 1.5), (1, 2.5), (2, 10.0)) t(g, x) group by g having avg(x) > 2 order by avg(x) desc
select x, avg(x) over (order by x rows between 1 preceding and current row) from (values (1.0), (2.5), (4.0)) t(x) order by x
select g, avg(x), sum(x), avg(x) filter (where x > 1), count(*), avg(y) from (values (1, 1.50::numeric(15,2), 0.001::numeric(12,3)), (1, null, 0.002), (2, null, 0.5), (2, 0.75, 1), (3, -0.01, 7)) t(g, x, y) group by g order by g
select avg(x), sum(x), avg(x) filter (where x > 100) from (values (0.00001::numeric(10,5)), (0.00002), (99999.99999)) t(x)
select avg(x), count(*) from (values (1.00::numeric(12,2))) t(x) where x > 5
select sqrt(2::numeric), sqrt(x) from (values (0.0002), (1000000), (0)) t(x)
select round(1.5, 3), round(x, 4), (1/3.0)::text, (x / 7)::text from (values (1.25)) t(x)
select r from (select x / 3 as r from (values (1.0), (100.0)) t(x)) s where r > 0.5 order by r
select sum(x) from (values (1::int8), (2::int8)) t(x)
select avg(x), var_pop(x) from (values (null::numeric)) t(x)
select var_samp(x), stddev_samp(x) from (values (5.0)) t(x)
select min(x / 3), max(x / 3), sum(x / 3), avg(x)::numeric(10,2), avg(x)::text, avg(x)::int from (values (1.0), (2.00)) t(x)
select x / 3 as r, count(*) from (values (1.0), (1.0), (2.5)) t(x) group by x / 3 order by r
select exp(2.0), exp(x), ln(x), log(x), log10(x), log(2, x), ln(1.001) from (values (1.5), (10.5), (123456.789)) t(x)
select x, avg(x) over (order by x), count(x) over (order by x desc), avg(x) over () from (values (1), (2), (4)) t(x) order by x
select max(x / 3), min(x / 3), coalesce(x / 3, 0), case when x > 3 then x / 3 else 0 end from (values (3.0), (4)) t(x) group by x order by 1
select 6 / 4.0, 100 * 7 / 3.0, (x / 3)::numeric, abs(-x / 3), -(x / 3) from (values (2.0)) t(x)
select power(2.0, 3), power(x, 2), power(2::numeric, -2), power(-0.3, 3.0), power(x, 0) from (values (1.5), (12345.6789)) t(x)
-- display scales carried through UNION, DISTINCT, INTERSECT/EXCEPT, DISTINCT ON and scalar subqueries
select * from (select 6/5.0 as v union all select 1/3.0 union all select 1.20 union all select 7) s order by v
select distinct x/5.0 from (values (6), (6), (5), (1)) t(x) order by 1
select 6/5.0 intersect select 12/10.0
select 1/3.0 except select 2
select v from (select x/4.0 as v from (values (1), (2)) t(x) union select 3) s order by v
select (select avg(x) from (values (1.0), (2.0)) t(x)) + 0, (select 1/3.0), (select sum(x/3.0) from (values (1), (2)) t(x))
select distinct on (g) g, x/3.0 from (values (1, 1.0), (1, 2.0), (2, 3.0)) t(g, x) order by g, x desc
select x, (select avg(y/3.0) from (values (1), (2)) u(y) where u.y = t.x) from (values (1), (2)) t(x) order by x
select o.x, (select max(y) from (values (1), (2)) u(y) where y = o.x) from (values (1), (2)) o(x) order by 1
-- a scalar subquery that finds no row is NULL, whatever its column's nullability
select (select 1 where false) is null, (select 1 where false) as v
select (select g from generate_series(1, 3) g where g > 5) is null
-- A recursive CTE whose outer query reads fewer columns than its recursive term needs (shown
-- as text: integer constants in a recursive query stay bigint, see engine/pg_literals.rs).
with recursive t(n, d) as (select 1, 0 union all select n + 1, d + 1 from t where d < 5) select n::text from t order by n
with recursive t(n) as (select 1 union all select n + 1 from t where n < 5) select count(*) from t
with recursive t(a, b, c) as (select 1, 'x', 2 union all select a + 1, b || 'y', c * 2 from t where c < 64) select b from t where a > 3 order by b
select (with recursive t(n) as (select 1 union all select n + 1 from t where n < 9) select count(*) from t)
-- aggregates beside ROLLUP, CUBE and GROUPING SETS (their grouping id is one more column of the grouping)
select k, sum(x), avg(x), count(*) from (values (1, 10), (1, 5), (2, 7)) t(k, x) group by rollup(k) order by 1
select k, j, sum(x), avg(x), max(x) from (values (1, 'a', 1.50), (1, 'b', 2.25), (2, 'a', 3.00)) t(k, j, x) group by cube(k, j) order by 1, 2
select k, sum(x::bigint), sum(y) from (values (1, 10, 0.50), (2, 7, 1.25)) t(k, x, y) group by grouping sets ((k), ()) order by 1
-- ORDER BY a bare name means the result column of that name first (`x::text` is named x)
select x::text from (values (3), (1), (20)) t(x) order by x
select lower(n) from (values ('B'), ('a'), ('C')) t(n) order by lower desc
select k, sum(x) from (values (1, 5), (2, 3), (1, 1)) t(k, x) group by k order by sum, k
select distinct x::text from (values (3), (1), (20), (3)) t(x) order by x
select x::text, x + 1 from (values (3), (1), (20)) t(x) order by x limit 2
select t.k, (select u.y::int8 from (values (1, 5), (1, 9), (2, 4)) u(k, y) where u.k = t.k order by y desc limit 1) as y from (values (1), (2)) t(k) order by 1
select t.k, (select u.y + 1 from (values (1, 5), (1, 9), (2, 4)) u(k, y) where u.k = t.k order by 1 desc limit 1) as y from (values (1), (2)) t(k) order by 1
