-- dnsward query log in ClickHouse: one row per DNS query from every resolver of a fleet.
--
-- `dnsward logs init-clickhouse` runs this file with the configured names (database
-- `dnsward` and table `queries` here), the TTL in days (90 here), and on servers before 19.6
-- the older forms: lines ending in "-- ttl" are left out (no TTL: drop old partitions with
-- `ALTER TABLE dnsward.queries DROP PARTITION 'YYYY-MM-DD'`), `IPv6` becomes
-- `FixedString(16)` (the same 16 bytes) and LowCardinality needs
-- allow_experimental_low_cardinality_type = 1. Tested with 18.16 (Debian) and 26.9 (chdb).
-- By hand: clickhouse-client --multiquery < schema.sql
--
-- Columns follow dnsward's LogRow (`dnsward logs export`); optional text fields hold '' for
-- "none". The client is an IPv6 address (IPv4 clients as ::ffff:a.b.c.d); with
-- `client_ip = "hash"` it is :: and the keyed hash is in client_hash (0 otherwise).

CREATE DATABASE IF NOT EXISTS dnsward;

CREATE TABLE IF NOT EXISTS dnsward.queries
(
    time        DateTime,                  -- UTC second of arrival (the sort key)
    ts_us       Int64,                     -- UTC microseconds since 1970 (exact)
    client      IPv6,
    client_hash UInt64,
    client_port Nullable(UInt16),          -- only with client_ip = "full"
    transport   LowCardinality(String),    -- udp tcp dot doh
    qname       String,                    -- lower case, no trailing dot
    qname_rev   String MATERIALIZED reverse(qname), -- suffix search: startsWith(qname_rev, reverse('.example.com'))
    qtype       LowCardinality(String),
    rcode       LowCardinality(String),
    action      LowCardinality(String),    -- allowed blocked refused servfail
    category    LowCardinality(String),
    list        LowCardinality(String),
    rule        String,
    trigger     LowCardinality(String),    -- qname cname ip
    cached      UInt8,
    answers     Array(String),
    latency_us  UInt32,
    instance    LowCardinality(String),    -- [server] name of the resolver
    client_name LowCardinality(String),
    client_group LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toDate(time)
ORDER BY (time, client)
TTL time + INTERVAL 90 DAY -- ttl
;

-- Per-minute rollups for dashboards (SummingMergeTree: sum(queries) when reading).

CREATE MATERIALIZED VIEW IF NOT EXISTS dnsward.queries_minute_actions
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, instance, action, category, list)
TTL minute + INTERVAL 90 DAY -- ttl
AS SELECT toStartOfMinute(time) AS minute, instance, action, category, list, count() AS queries
FROM dnsward.queries
GROUP BY minute, instance, action, category, list;

CREATE MATERIALIZED VIEW IF NOT EXISTS dnsward.queries_minute_clients
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, client, action, category, list)
TTL minute + INTERVAL 90 DAY -- ttl
AS SELECT toStartOfMinute(time) AS minute, client, action, category, list, count() AS queries
FROM dnsward.queries
GROUP BY minute, client, action, category, list;

CREATE MATERIALIZED VIEW IF NOT EXISTS dnsward.queries_minute_qnames
ENGINE = SummingMergeTree
PARTITION BY toDate(minute)
ORDER BY (minute, qname, action, category, list)
TTL minute + INTERVAL 90 DAY -- ttl
AS SELECT toStartOfMinute(time) AS minute, qname, action, category, list, count() AS queries
FROM dnsward.queries
GROUP BY minute, qname, action, category, list;

-- Alert history (`[[alerts]]`): one row per alert a resolver sent, the alert as JSON (as
-- `dnsward alerts list --json` prints it), and one row per step of each of its deliveries
-- (queued, failed, delivered, lost), appended, never updated. Read by
-- `dnsward alerts list --source clickhouse` and `GET /api/alerts?source=clickhouse`.

CREATE TABLE IF NOT EXISTS dnsward.queries_alerts
(
    time        DateTime MATERIALIZED toDateTime(intDiv(ts_us, 1000000)),
    ts_us       Int64,                     -- when raised, UTC microseconds since 1970
    id          String,
    instance    String,                    -- [server] name of the resolver
    rule        String,
    kind        String,
    client      String,                    -- '' for none
    alert       String                     -- the alert as JSON
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, rule)
TTL time + INTERVAL 90 DAY -- ttl
;

CREATE TABLE IF NOT EXISTS dnsward.queries_alert_deliveries
(
    time        DateTime MATERIALIZED toDateTime(intDiv(ts_us, 1000000)),
    ts_us       Int64,
    alert_id    String,
    action      String,                    -- webhook email syslog
    target      String,
    state       String                     -- queued failed delivered lost
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, alert_id)
TTL time + INTERVAL 90 DAY -- ttl
;
