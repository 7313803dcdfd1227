"""The Python side of the fixture benchmark: 30 tests, 20 on PostgreSQL and 10 on Redis.

Every PostgreSQL test gets a clean database (the function-scoped ``postgresql`` fixture, made
from the template that holds schema.sql), inserts a few rows named after itself and checks
that the table holds exactly those rows: a row left over by any other test would fail it.
"""

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

# (test number, rows it inserts): 1 to 5 rows, each test its own names.
PG_CASES = [(n, n % 5 + 1) for n in range(1, 21)]


@pytest.mark.parametrize(("case", "rows"), PG_CASES, ids=[f"pg{n:02d}" for n, _ in PG_CASES])
def test_postgresql_clean_database(postgresql, case, rows):
    names = [f"pg{case:02d}-row{i}" for i in range(rows)]
    with postgresql.cursor() as cur:
        for name in names:
            cur.execute("INSERT INTO items (name) VALUES (%s) RETURNING id", (name,))
            (item_id,) = cur.fetchone()
            cur.execute("INSERT INTO tags (item_id, tag) VALUES (%s, %s)", (item_id, f"pg{case:02d}"))
        postgresql.commit()

        cur.execute("SELECT count(*) FROM items")
        assert cur.fetchone()[0] == rows
        cur.execute("SELECT name FROM items ORDER BY id")
        assert [r[0] for r in cur.fetchall()] == names
        cur.execute("SELECT count(*) FROM tags WHERE tag = %s", (f"pg{case:02d}",))
        assert cur.fetchone()[0] == rows


def test_redis_starts_empty(redisdb):
    # The previous test's keys were flushed after it.
    assert redisdb.dbsize() == 0
    redisdb.set("left-behind", "x")


def test_redis_set_get(redisdb):
    assert redisdb.set("greeting", "hello")
    assert redisdb.get("greeting") == b"hello"
    assert redisdb.get("missing") is None


def test_redis_incr(redisdb):
    assert redisdb.incr("counter") == 1
    assert redisdb.incr("counter") == 2
    assert redisdb.incrby("counter", 40) == 42
    assert redisdb.get("counter") == b"42"


def test_redis_decr(redisdb):
    redisdb.set("stock", 10)
    assert redisdb.decr("stock") == 9
    assert redisdb.decrby("stock", 9) == 0


def test_redis_list_push_range(redisdb):
    assert redisdb.rpush("queue", "a", "b", "c") == 3
    assert redisdb.lpush("queue", "z") == 4
    assert redisdb.lrange("queue", 0, -1) == [b"z", b"a", b"b", b"c"]
    assert redisdb.llen("queue") == 4


def test_redis_list_pop(redisdb):
    redisdb.rpush("jobs", "first", "second", "third")
    assert redisdb.lpop("jobs") == b"first"
    assert redisdb.rpop("jobs") == b"third"
    assert redisdb.lrange("jobs", 0, -1) == [b"second"]


def test_redis_hash(redisdb):
    redisdb.hset("user:1", mapping={"name": "ada", "lang": "rust"})
    assert redisdb.hget("user:1", "name") == b"ada"
    assert redisdb.hgetall("user:1") == {b"name": b"ada", b"lang": b"rust"}


def test_redis_delete_exists(redisdb):
    redisdb.mset({"k1": "1", "k2": "2"})
    assert redisdb.exists("k1", "k2") == 2
    assert redisdb.delete("k1") == 1
    assert redisdb.exists("k1", "k2") == 1


def test_redis_expire(redisdb):
    redisdb.set("session", "token", ex=100)
    assert 0 < redisdb.ttl("session") <= 100
    assert redisdb.persist("session")
    assert redisdb.ttl("session") == -1


def test_redis_outage(redis_proc, redisdb):
    redisdb.set("before-outage", "1")
    # The probe during the outage has no retries: redis-py 8's default client retries a
    # refused connection 10 times with backoff up to 1 s (about 3 s in all), which would time
    # redis-py's patience rather than the fixture.
    probe = redis.Redis(unix_socket_path=redis_proc.unixsocket, retry=Retry(NoBackoff(), 0))
    with redis_proc.stopped():
        with pytest.raises(redis.exceptions.ConnectionError):
            probe.ping()
    probe.close()
    # The same server answers again, empty: nothing was persisted.
    assert redisdb.ping()
    assert redisdb.get("before-outage") is None
