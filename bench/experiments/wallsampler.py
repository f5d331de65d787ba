"""A wall-clock stack sampler injected into a server process (bench/experiments/serial.py):
every 2 ms, where each thread is; written as JSON at exit. Biased towards states that release
the GIL (I/O, idle), so it shows waiting, not CPU."""
import atexit, collections, json, os, sys, threading, time
OUT = os.environ["WALL_SAMPLES_OUT"]
counts = collections.defaultdict(collections.Counter)
PKGS = ("conversations/", "agent/", "channels_redis/", "channels/", "redis/", "langgraph/", "langchain_core/", "django/db/", "django/", "psycopg/", "psycopg_pool/", "asgiref/", "daphne/", "twisted/", "autobahn/", "asyncio/")
def where(frame):
    inner = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_code.co_name}"
    pkgs = []
    f = frame
    while f is not None:
        fn = f.f_code.co_filename
        for p in PKGS:
            if p in fn:
                if not pkgs or pkgs[-1] != p:
                    pkgs.append(p)
                break
        f = f.f_back
    return inner, pkgs
def loop():
    me = threading.get_ident()
    main = threading.main_thread().ident
    while True:
        time.sleep(0.002)
        for tid, frame in sys._current_frames().items():
            if tid == me:
                continue
            inner, pkgs = where(frame)
            kind = "main" if tid == main else f"thread"
            if inner in ("selectors.py:select",):
                counts[kind]["IDLE (epoll)"] += 1
            elif inner in ("threading.py:wait", "queue.py:get", "thread.py:_worker") and "psycopg/" not in pkgs:
                counts[kind]["IDLE (waiting for work)"] += 1
            else:
                counts[kind][f"{inner}  <{' < '.join(pkgs[:4])}>"] += 1
                counts[kind + " total busy/io"]["_"] += 1
def dump():
    with open(OUT, "w") as fh:
        json.dump({k: v.most_common(40) for k, v in counts.items()}, fh, indent=1)
atexit.register(dump)
threading.Thread(target=loop, daemon=True).start()
