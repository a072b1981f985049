"""Where clips are computed: in this process, in a local process pool, or on a Dask cluster.

Every pool hands results back as they finish (not in submission order), keeping a window of
tasks in flight so that workers never wait for the process that writes the store.  A Dask
cluster is checked before the first clip (workers import emofuse and read the corpus) and
watched while clips run, so that a broken cluster stops the run with a :class:`WorkerError`
naming the cause and the remedy within a bounded time instead of hanging.
"""

import concurrent.futures
import ctypes
import fcntl
import functools
import importlib
import itertools
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

from .errors import WorkerError

INSTALL_HELP = ("install emofuse and its pinned dependencies into the environment of the scheduler and of "
                "every worker (`pip install -r requirements.txt && pip install --no-deps /path/to/emofuse`, "
                "or start them from a shared virtual environment), then restart them")


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and the subprocesses it waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


KEPT_BLOCK_BYTES = 32 << 20
"""Freed blocks up to this size stay in a worker's heap (see :func:`keep_freed_memory`):
glibc's own ceiling for the bound it raises by itself.  The pitch step of a 3.7 s RAVDESS
clip needed a bound between 4 and 8 MiB to reuse its temporaries (measured), so this holds
clips up to about 15 s."""


@functools.cache
def keep_freed_memory() -> None:
    """Let glibc's malloc reuse freed blocks of up to :data:`KEPT_BLOCK_BYTES` (and keep
    twice that free at the top of its heap) instead of handing them back to the system;
    once per process, inherited by forked workers.  Elsewhere than glibc, nothing.

    By default glibc maps each block above 128 KiB afresh and unmaps it when freed, raising
    that bound only after a larger mapped block is freed, so the large temporaries of every
    clip and every fit (YIN's lag matrix, spectrograms, kernel matrices) were zero-filled
    page by page each time: the workers of a 720-clip real-speech run spent 5.1 s of system
    time, 1.2-1.3 s with this, and the pitch step half its CPU (one-off runs).  Values are the
    same; a process may hold up to 2 x :data:`KEPT_BLOCK_BYTES` of freed memory between tasks.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (musl has no mallopt)
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's <malloc.h>
    mallopt(m_mmap_threshold, KEPT_BLOCK_BYTES)
    mallopt(m_trim_threshold, 2 * KEPT_BLOCK_BYTES)


def unordered(pool, function, items, *args):
    """Yield ``function(item, *args)`` for every item, in the order the results finish.

    At most ``pool.in_flight`` calls are submitted at a time; a new one is submitted as soon
    as one finishes, before its result is handed on.
    """
    items = iter(items)
    running = {pool.submit(function, item, *args): item for item in itertools.islice(items, pool.in_flight)}
    try:
        while running:
            done = pool.wait(running)
            if not done:
                pool.check()
                continue
            for future in done:
                item = running.pop(future)
                for following in itertools.islice(items, 1):
                    running[pool.submit(function, following, *args)] = following
                yield pool.result(future, item)
    finally:
        pool.cancel(running)


class InlinePool:
    """Clips computed one after the other in this process (``jobs=1``), each when waited for."""

    cores = 1
    in_flight = 1

    def __init__(self):
        self._calls = {}  # future -> (function, args), not yet run

    def submit(self, function, *args):
        future = concurrent.futures.Future()
        self._calls[future] = (function, args)
        return future

    def wait(self, futures):
        future = next(iter(futures))
        function, args = self._calls.pop(future)
        try:
            future.set_result(function(*args))
        except BaseException as err:  # handed on by result(), like a pool's future
            future.set_exception(err)
        return {future}

    def check(self):
        pass

    def result(self, future, item):
        return future.result()

    def cancel(self, futures):
        pass

    def close(self):
        pass


class LocalPool:
    """``jobs`` worker processes on this machine.

    On Linux, from a process with no other thread running (a command line), they are forked
    from this process after ``initializer(*initargs)`` ran here, so they start with its imports
    and warmed-up kernels instead of paying for both again (seconds per worker).  Elsewhere
    (other systems, or threads that a fork could leave holding locks) they are spawned and
    each runs ``initializer`` itself.  The workers start at once, before the caller starts
    threads of its own.
    """

    def __init__(self, jobs: int, initializer=None, initargs=(), *, in_flight_per_worker: int = 4):
        self.cores = min(jobs, os.cpu_count() or jobs)
        self.in_flight = in_flight_per_worker * jobs
        fork = sys.platform == "linux" and threading.active_count() == 1
        if fork and initializer is not None:
            initializer(*initargs)
        self._executor = concurrent.futures.ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("fork" if fork else "spawn"),
            initializer=None if fork else initializer, initargs=initargs)
        _widen_result_pipe(self._executor)
        self._executor.submit(os.getpid).result()  # starts every worker (a fork pool starts them all)

    def submit(self, function, *args):
        return self._executor.submit(function, *args)

    def wait(self, futures):
        return concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)[0]

    def check(self):
        pass  # wait() returns only when a clip finished; a dead worker breaks the pool, see result()

    def result(self, future, item):
        try:
            return future.result()
        except BrokenProcessPool as err:
            raise WorkerError(f"a worker process died while computing clip {_name(item)} ({err}); finished clips "
                              "are in the store, rerun to resume (with fewer --jobs if memory ran out)") from err

    def cancel(self, futures):
        for future in futures:
            future.cancel()

    def close(self):
        self._executor.shutdown(wait=True, cancel_futures=True)


RESULT_PIPE_BYTES = 1 << 20
"""Capacity of the pipe that carries a local pool's results back (Linux's default limit for
an unprivileged process; 64 KiB by default)."""


def _widen_result_pipe(executor) -> None:
    """Let workers hand their results to the pipe without waiting for this process to read.

    A speech clip's result is about 320 KB: through a 64 KiB pipe a worker waited for this
    process's reader thread, which waits for the GIL while the shard writer runs (the cores
    of a 720-clip run idled 0.53-0.55 core-seconds instead of 0.68-0.77).  Where the pipe
    cannot grow (another system, a lower limit, another Python's executor), nothing changes.
    """
    try:
        fcntl.fcntl(executor._result_queue._reader.fileno(), fcntl.F_SETPIPE_SZ, RESULT_PIPE_BYTES)
    except (AttributeError, OSError):
        pass


class DaskPool:
    """Clips computed on the Dask cluster at ``scheduler`` (an address or a ``distributed.Client``).

    Parameters
    ----------
    scheduler : str or distributed.Client
    probe_paths : list of str
        Files every worker must be able to read (a few of the corpus), checked before any clip.
    timeout : float
        Seconds to wait for the scheduler, for a first worker, and with no worker left.
    poll : float
        Seconds between health checks while no clip finishes.
    """

    def __init__(self, scheduler, probe_paths=(), *, timeout: float = 60.0, poll: float = 2.0,
                 in_flight_per_thread: int = 4):
        from distributed import Client

        self.timeout, self.poll = timeout, poll
        self._since_workers = None
        self._own = not isinstance(scheduler, Client)
        try:
            self.client = Client(scheduler, timeout=timeout) if self._own else scheduler
        except (OSError, TimeoutError) as err:
            raise WorkerError(f"cannot reach the Dask scheduler at {scheduler} within {timeout:.0f} s ({err}); "
                              "start it with `dask scheduler` and check the address and port") from err
        self.address = self.client.scheduler.address
        try:
            self._wait_for_workers()
            self._probe(list(probe_paths))
            self.cores = sum(self.client.nthreads().values())
        except BaseException:
            self.close()
            raise
        self.in_flight = in_flight_per_thread * self.cores

    def _wait_for_workers(self):
        try:
            self.client.wait_for_workers(1, timeout=self.timeout)
        except TimeoutError as err:
            raise WorkerError(f"no Dask worker joined the scheduler at {self.address} within {self.timeout:.0f} s; "
                              f"start workers with `dask worker {self.address} --nthreads 1`") from err

    def _probe(self, paths):
        """Every worker imports emofuse's feature stage and reads ``paths``."""
        try:
            unreadable = self.client.run(probe_worker, paths)
        except Exception as err:  # what the worker raised, re-raised here (often as a bare Exception)
            text = f"{type(err).__name__}: {err}" if type(err) is not Exception else str(err)
            if "No module named" in text or isinstance(err, ImportError):
                raise WorkerError(f"Dask workers at {self.address} cannot import emofuse ({text}); "
                                  f"{INSTALL_HELP}") from err
            raise WorkerError(f"Dask workers at {self.address} failed emofuse's start-up check ({text})") from err
        for worker, missing in sorted(unreadable.items()):
            if missing:
                raise WorkerError(
                    f"Dask worker {worker} cannot read {missing[0]}"
                    f"{f' (and {len(missing) - 1} more corpus files)' if len(missing) > 1 else ''}; every node must "
                    "see the corpus at the same path as this client (a shared filesystem mounted at the same place)")

    def submit(self, function, *args):
        return self.client.submit(function, *args, pure=False)

    def wait(self, futures):
        from distributed import wait

        try:
            return wait(list(futures), timeout=self.poll, return_when="FIRST_COMPLETED").done
        except TimeoutError:
            return set()

    def check(self):
        """Raise when the scheduler is gone or no worker has been left for ``timeout`` seconds."""
        if self.client.status not in ("running", "connecting"):
            raise WorkerError(f"lost the connection to the Dask scheduler at {self.address} "
                              f"(client {self.client.status}); finished clips are in the store, rerun to resume")
        try:
            workers = self.client.nthreads()
        except Exception as err:
            raise WorkerError(f"lost the connection to the Dask scheduler at {self.address} ({err}); "
                              "finished clips are in the store, rerun to resume") from err
        if workers:
            self._since_workers = None
        elif self._since_workers is None:
            self._since_workers = time.monotonic()
        elif time.monotonic() - self._since_workers > self.timeout:
            raise WorkerError(f"every Dask worker left the scheduler at {self.address} and none came back within "
                              f"{self.timeout:.0f} s (killed, out of memory? see the worker logs); finished clips "
                              f"are in the store; start workers with `dask worker {self.address} --nthreads 1` "
                              "and rerun to resume")

    def result(self, future, item):
        from distributed import KilledWorker

        try:
            while True:
                try:
                    return future.result(timeout=self.poll)
                except TimeoutError:
                    # Finished, but its worker left before handing the result over: Dask
                    # recomputes it once a worker is back; stop if none comes back in time.
                    self.check()
        except WorkerError:
            raise
        except KilledWorker as err:
            raise WorkerError(f"Dask workers died while computing clip {_name(item)} ({err}; out of memory or a "
                              "crash, see the worker logs); finished clips are in the store, rerun to resume") from err
        except Exception as err:
            text = f"{type(err).__name__}: {err}"
            if "deserialization of the task graph" in text or isinstance(err, ImportError):
                raise WorkerError(f"the Dask scheduler at {self.address} cannot load emofuse's tasks ({text}); "
                                  f"{INSTALL_HELP}") from err
            raise WorkerError(f"Dask failed on clip {_name(item)} ({text})") from err

    def cancel(self, futures):
        if futures and self.client.status == "running":
            self.client.cancel(list(futures))

    def close(self):
        if self._own:
            self.client.close()


def _name(item) -> str:
    return str(item.get("clip_id", item)) if isinstance(item, dict) else str(item)


def probe_worker(paths) -> list:
    """Run on each Dask worker: import the feature stage and return the ``paths`` it cannot read."""
    importlib.import_module("features.runner")
    return [p for p in paths if not os.access(p, os.R_OK)]


@contextmanager
def local_cluster(workdir, n_workers: int = 2, *, env=None, python=(sys.executable,)):
    """A ``dask scheduler`` and ``n_workers`` ``dask worker --nthreads 1`` processes on 127.0.0.1,
    started in ``workdir`` the way cluster nodes start them (for benchmarks and tests).

    Yields ``(address, processes)``, scheduler first; every process and its children (the
    workers' nannies start the workers) is ended on exit.  ``env`` is their environment
    (default: this one); ``python`` the interpreter command that runs them.  Logs go to
    ``workdir/<scheduler|worker>-<i>.log``.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    started = []

    def start(role, *args):
        with open(workdir / f"{role}-{len(started)}.log", "wb") as log:
            started.append(subprocess.Popen([*python, "-m", f"distributed.cli.dask_{role}", *args], cwd=workdir,
                                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard")
        for i in range(n_workers):
            start("worker", address, "--nthreads", "1", "--no-dashboard", "--death-timeout", "60", "--name", f"node-{i}")
        yield address, list(started)
    finally:
        for proc in reversed(started):
            end_process_group(proc)


def end_process_group(proc, sig=signal.SIGTERM, timeout: float = 20.0) -> None:
    """End ``proc`` (started with ``start_new_session=True``) and every process it started."""
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
