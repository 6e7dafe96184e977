\set k random(1, 1500)
SELECT c_name, c_phone FROM tpch.customer WHERE c_custkey = :k;
SELECT count(*) FROM tpch.orders WHERE o_custkey = :k;
SELECT n_name, count(*) FROM tpch.customer JOIN tpch.nation ON c_nationkey = n_nationkey GROUP BY n_name ORDER BY 2 DESC LIMIT 3;
SELECT o_orderpriority, sum(o_totalprice) FROM tpch.orders WHERE o_orderdate >= DATE '1995-01-01' GROUP BY o_orderpriority;
