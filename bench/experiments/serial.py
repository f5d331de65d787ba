"""Where does ~10 turns/s come from? The many-conversations load (C clients x M messages,
`slow 5`, 50 ms) against variants, with PostgreSQL counters per turn (new sessions,
transactions, WAL fsyncs) and the server's run timings. Not a bench: an investigation aid.

    DATABASE_URL=... REDIS_URL=... .venv/bin/python bench/experiments/serial.py 100 3 default,all-async-commit,pool50

Variants: default; django-async-commit (Django's connections with synchronous_commit=off);
all-async-commit (the whole database); pool50 (CHECKPOINT_POOL_SIZE=50);
pg-inmemory-layer (PostgreSQL, no REDIS_URL: in-memory channel layer);
switch<ms> (sys.setswitchinterval, with a wall-clock stack sampler writing /tmp/wall-<variant>.json).
"""
import asyncio, sys, tempfile, time
from pathlib import Path
HERE = str(Path(__file__).resolve().parent)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
import bench.many_conversations as mc
from tests.live import Templates, admin_sql, psycopg, postgres_admin_url

CLIENTS, MESSAGES = int(sys.argv[1]), int(sys.argv[2])
VARIANTS = sys.argv[3].split(",")

def stats(dbname):
    with psycopg.connect(postgres_admin_url(), autocommit=True) as c:
        commits, sessions = c.execute("select xact_commit, sessions from pg_stat_database where datname=%s", (dbname,)).fetchone()
        commits = (commits, sessions)
        wal = c.execute("select wal_sync, wal_records from pg_stat_wal").fetchone()
    return commits, wal[0], wal[1]

async def one(variant):
    workdir = Path(tempfile.mkdtemp(prefix="exp-"))
    t = Templates(workdir)
    orig = t.new_database
    env = {}
    def new_database(backend, redis=False):
        db = orig(backend, redis=redis)
        name = db.url.rsplit("/", 1)[1]
        if variant == "django-async-commit":
            db.env["DATABASE_URL"] = db.url + "?options=-c%20synchronous_commit%3Doff"
        if variant == "pg-inmemory-layer":
            db.env.pop("REDIS_URL", None)
        if variant == "all-async-commit":
            admin_sql(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        new_database.name = name
        return db
    t.new_database = new_database
    if variant.startswith("switch"):
        env["WALL_SAMPLES_OUT"] = f"/tmp/wall-{variant}.json"
        import tests.live as live
        interval = float(variant[len("switch"):]) / 1000
        class SwitchServer(live.Server):
            def start(self, timeout=30):
                import subprocess, httpx
                code = (f"import sys; sys.path.insert(0, '{HERE}'); import wallsampler; sys.setswitchinterval({interval}); sys.argv=['daphne','-b','127.0.0.1','-p','{self.port}',"
                        "'chatproject.asgi:application']; from daphne.cli import CommandLineInterface; CommandLineInterface.entrypoint()")
                self.process = subprocess.Popen([live.PYTHON, "-c", code], cwd=live.ROOT, env={**self.database.env, **self.extra_env},
                                                stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:
                        if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                            return self
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.1)
                raise RuntimeError("not healthy")
        mc.Server = SwitchServer
    else:
        import tests.live as live
        mc.Server = live.Server
    if variant == "pool50":
        env["CHECKPOINT_POOL_SIZE"] = "50"
    # wrap ours to sample stats around the load
    orig_sampler = mc.Sampler
    box = {}
    class S(orig_sampler):
        def start(self):
            box["s0"] = stats(new_database.name); super().start()
        def stop(self):
            box["s1"] = stats(new_database.name)
            with psycopg.connect(postgres_admin_url().rsplit("/", 1)[0] + "/" + new_database.name, autocommit=True) as c:
                box["runs"] = c.execute("""select avg(extract(epoch from started_at - created_at)), avg(extract(epoch from finished_at - started_at)),
                    percentile_cont(0.95) within group (order by extract(epoch from finished_at - started_at)),
                    (select avg(extract(epoch from m.created_at - r.started_at)) from conversations_message m join conversations_run r on m.run_id = r.id where m.role = 'assistant'),
                    count(*) from conversations_run""").fetchone()
            return super().stop()
    mc.Sampler = S
    try:
        r = await mc.ours(t, "postgres", workdir, CLIENTS, MESSAGES, 50, 300, env)
    finally:
        mc.Sampler = orig_sampler
        t.drop_all()
    turns = CLIENTS * MESSAGES
    s = mc.summary(r, turns)
    (c0, w0, r0), (c1, w1, r1) = box["s0"], box["s1"]
    print(f"{variant:22} turns/s {s['tps']:7.1f}  p50 {s['p50']:.2f}s p95 {s['p95']:.2f}s  "
          f"PG sessions/turn {(c1[1]-c0[1])/turns:.1f}  commits/turn {(c1[0]-c0[0])/turns:.1f}  WAL fsyncs/turn {(w1-w0)/turns:.1f}  WAL records/turn {(r1-r0)/turns:.0f}", flush=True)
    print("   ", r["cpu"], flush=True)
    q, e, e95, reply, n = box["runs"]
    print(f"    server side: created→started {q:.3f}s, started→finished {e:.3f}s (p95 {e95:.3f}s), started→assistant row stored {reply:.3f}s, runs {n}", flush=True)

async def main():
    for v in VARIANTS:
        await one(v)

asyncio.run(main())
