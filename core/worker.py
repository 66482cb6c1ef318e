"""The RQ worker class and its supervision (TarsWorker): RQ's forking Worker plus what long unattended tasks need.

* A work-horse that dies without recording its ending (SIGKILL, the OOM killer, a stop command) gets its
  ending recorded by its worker at once: failed with the reason (or cancelled), the owner told, no
  confirmation request left pending.
* Every worker refreshes a liveness hash (tars:worker:<name>) from a thread. One worker at a time holds
  the reaper lease (tars:reaper:leader) and fails the running tasks whose worker stopped refreshing,
  killing the orphan horse first when it runs on this host. RQ alone notices only after ~11 minutes. A plan's
  finishing job (no task of its own) is run again instead, until FINISHER_WORKER_DEATHS of its workers died.
* A Redis outage neither kills the worker nor loses the task: heartbeats ride it out, and the work loop
  starts again instead of quitting.
* The second SIGTERM/Ctrl+C (cold shutdown) stops the running task and marks it failed.
* While the owner has paused every worker (core/pause.py) it takes no new task and idles, registered, until resumed;
  a job it took just as the pause came goes back to the front of its queue. A task held by a pause keeps its horse:
  RQ's own timeout watch on it leaves the held time out.
* With RQ's maintenance (at start-up, then hourly) it removes the worktrees of tasks idle for longer than
  WORKTREE_RETENTION_DAYS; a running task's checkout is never touched.
* It runs RQ's scheduler (start_worker.py: with_scheduler), which queues scheduled tasks at their time
  (core/schedules.py); one worker's scheduler holds each queue's lock, and it ends with its worker. Another
  worker's takes over within WORKER_ALIVE_REFRESH_SECONDS of the locks' release (RQ alone: at its next maintenance).
* The reaper's leader also lets the tasks the daily budget held start once it allows them again: a new day, a
  raised budget (core/budget.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

import psutil
import redis
from rq import Queue
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.job_lifecycle import record_job_failure
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.registry import StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.utils import now
from rq.worker import SpawnWorker, Worker, WorkerStatus

from core import budget, capabilities, event_log, git_workspace, keys, pause, plans
from core.background_worker import record_abandoned_end
from core.config import Settings
from core.redis_conn import Lease, private_client
from core.retries import RETRY_BY_HAND
from core.task_manager import FINISH_JOB_FUNCTION, TaskManager
from core.task_states import CANCELLED, ENDING_KINDS, FAILED
from core.defaults import (CHECKOUT_CLEANUP_INTERVAL_SECONDS, FINISHER_WORKER_DEATHS, REAPER_INTERVAL_SECONDS,
                           REAPER_LEASE_SECONDS, WORKER_ALIVE_REFRESH_SECONDS, WORKER_ALIVE_TTL_SECONDS)

log = logging.getLogger("tars.worker")

OUTAGE_BACKOFF_MAX_SECONDS = 10.0
PUBSUB_POLL_SECONDS = 0.5  # how long a stopping worker may wait for its command-channel thread
TARS_MARK = "tars_liveness"


def horse_death_reason(ret_val: int | None) -> str:
    """A sentence for how the work-horse ended, from waitpid's status."""
    if ret_val is not None and os.WIFSIGNALED(ret_val):
        number = os.WTERMSIG(ret_val)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        why = " (often the out-of-memory killer)" if number == signal.SIGKILL else ""
        return f"The process running the task was killed by {name}{why}."
    code = os.WEXITSTATUS(ret_val) if ret_val is not None and os.WIFEXITED(ret_val) else ret_val
    return f"The process running the task exited unexpectedly (status {code})."


class TarsWorkerMixin:
    """What TARS adds to RQ's Worker (see the module docstring); `settings` must be set before work(), and
    `capabilities` (its --capabilities, whose queues it serves) too when it has any."""

    settings: Settings
    capabilities: tuple[str, ...] = ()
    _checkouts_cleaned = float("-inf")  # monotonic time of the last clean_checkouts()
    _scheduler_lock = threading.RLock()  # one start of the scheduler at a time (one worker per process)

    # --- RQ's command channel (stop-job, kill-horse, shutdown) ------------------------------------------
    # RQ reads it on the worker's own pool, polling every 60 s, and unsubscribe() closes it from the main thread.
    # redis-py 8.2's PubSubWorkerThread.stop() waits for that poll, so a stopping worker hung up to a minute; and a
    # pub/sub on the shared pool is the hazard of the work-horse hang (see redis_conn.private_client).
    def subscribe(self):
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self._pubsub_client = private_client(self.connection)
        self.pubsub = self._pubsub_client.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=PUBSUB_POLL_SECONDS, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def unsubscribe(self):
        if self.pubsub_thread:
            self.log.info("Worker %s: unsubscribing from channel %s", self.name, self.pubsub_channel_name)
            self.pubsub_thread.stop(timeout=10 * PUBSUB_POLL_SECONDS)  # the thread closes its pub/sub as it ends
            if not self.pubsub_thread.is_alive():
                self._pubsub_client.close()
            self.pubsub_thread = None

    # --- RQ's scheduler: scheduled tasks (core/schedules.py) ------------------------------------------------
    def _start_scheduler(self, burst: bool = False, logging_level: str | None = "INFO",
                         date_format: str = DEFAULT_LOGGING_DATE_FORMAT, log_format: str = DEFAULT_LOGGING_FORMAT):
        """RQ's own (rq.worker.base), with TarsScheduler in place of RQScheduler, which RQ names there."""
        self.scheduler = TarsScheduler(self.queues, connection=self.connection, serializer=self.serializer,
                                       logging_level=logging_level if logging_level is not None else self.log.level,
                                       date_format=date_format, log_format=log_format)
        self.scheduler.settings = self.settings
        self.scheduler.acquire_locks()
        if self.scheduler.acquired_locks:
            if burst:
                try:
                    self.scheduler.register_birth()
                    self.scheduler.enqueue_scheduled_jobs()
                finally:
                    self.scheduler.release_locks()
                    self.scheduler.register_death()
            else:
                self.scheduler.start()
        self._scheduler_burst = burst

    def take_over_scheduler(self, connection: redis.Redis) -> bool:
        """Start this worker's scheduler when no scheduler holds a queue's lock any more (its worker died and it
        ended with it, TarsScheduler). The liveness thread calls it every beat, with its own connection: RQ itself
        retries only with its maintenance, every 10 minutes, so a retry due in seconds waited that long. True when
        it started one."""
        scheduler = getattr(self, "scheduler", None)
        if scheduler is None or getattr(self, "_scheduler_burst", True):
            return False
        with self._scheduler_lock:
            if scheduler._process is not None and scheduler._process.is_alive():
                return False
            lock_keys = [scheduler.get_locking_key(name) for name in scheduler._queue_names]
            if connection.exists(*lock_keys) == len(lock_keys):
                return False  # another worker's scheduler holds them all: RQ's usual case
            scheduler.acquire_locks(auto_start=True)
            return scheduler._process is not None and scheduler._process.is_alive()

    # --- finished tasks' checkouts -----------------------------------------------------------------
    def run_maintenance_tasks(self):
        with self._scheduler_lock:  # RQ's maintenance may start the scheduler too: never beside the liveness thread
            super().run_maintenance_tasks()
        if time.monotonic() - self._checkouts_cleaned >= CHECKOUT_CLEANUP_INTERVAL_SECONDS:
            self.clean_checkouts()

    def clean_checkouts(self) -> list[str]:
        """Remove the checkouts idle for WORKTREE_RETENTION_DAYS, except those of tasks still queued or running."""
        self._checkouts_cleaned = time.monotonic()
        try:
            keep = set()
            for queue in capabilities.tars_queues(self.connection):  # other workers' queues too
                keep.update(queue.get_job_ids())
                keep.update(StartedJobRegistry(queue=queue).get_job_ids())
            removed = git_workspace.cleanup(self.settings.checkouts_dir, keep=keep)
        except Exception:  # housekeeping must never take the worker down
            log.exception("cleaning up old task checkouts failed")
            return []
        if removed:
            log.info("removed the checkouts of %d finished tasks older than the retention period: %s",
                     len(removed), ", ".join(removed))
        return removed

    # --- the work-horse died without recording its ending ------------------------------------------
    # Recorded before RQ marks the job failed, so nobody ever reads "failed" without TARS's reason.
    def handle_work_horse_killed(self, job, retpid, ret_val, rusage):
        super().handle_work_horse_killed(job, retpid, ret_val, rusage)
        self._record_horse_end(job, ret_val)

    def _handle_stopped_job(self, job: Job, queue, execution: Execution):
        self._record_horse_end(job, None)
        super()._handle_stopped_job(job, queue, execution)

    def _record_horse_end(self, job: Job, ret_val: int | None) -> None:
        try:
            meta = job.get_meta(refresh=True) or {}
            if "goal" not in meta or meta.get("phase") in ENDING_KINDS:
                return  # not a TARS task (another job on this queue), or it recorded its own ending
            # RQ's stop command (cancel's backstop) is only ever sent after the cancel key is set.
            if self.connection.exists(keys.task_cancel(job.id)):
                record_abandoned_end(job, self.settings, CANCELLED, "The task was cancelled.")
            else:
                reason = f"{horse_death_reason(ret_val)} {RETRY_BY_HAND.format(task_id=job.id)}"
                record_abandoned_end(job, self.settings, FAILED, reason)
            if meta.get("parent"):  # a plan's subtask: its plan may have nothing left that can go on
                TaskManager(self.connection, self.settings).tell_if_blocked(meta["parent"])
        except Exception:  # recording must never take the worker down
            log.exception("[task %s] could not record the end of its killed work-horse", job.id)

    # --- pause (core/pause.py): no new task starts while every worker is paused ---------------------------
    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        while True:
            if timeout is None and pause.workers_paused(self.connection):
                return None  # a --burst worker (no timeout) ends: it may take nothing now
            self._wait_while_paused()
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            if result is None or not pause.workers_paused(self.connection):
                return result
            self._put_back(*result)

    def _wait_while_paused(self) -> None:
        if not pause.workers_paused(self.connection):
            return
        log.info("Worker %s: paused; no task starts until `%s`", self.name, pause.RESUME_WORKERS)
        self.set_state(WorkerStatus.SUSPENDED)
        self.procline("Paused (python main_tars.py workers resume)")

        def stop() -> bool:  # called every PAUSE_CHECK_SECONDS: the worker stays registered and does its upkeep
            self.heartbeat()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            return self._stop_requested

        pause.wait(self.connection, pause.workers_paused, stop)
        self.set_state(WorkerStatus.IDLE)
        log.info("Worker %s: resumed", self.name)

    def _put_back(self, job: Job, queue) -> None:
        """A job taken just as the workers were paused (this worker was already waiting on its queue) goes back to
        the front of that queue, as if never taken."""
        log.info("[task %s] the workers were paused as it was taken: back to the front of %s", job.id, queue.name)
        with self.connection.pipeline() as pipe:
            pipe.lrem(queue.intermediate_queue_key, 1, job.id)
            queue.push_job_id(job.id, pipeline=pipe, at_front=True)
            pipe.execute()

    def _stretch_for_pause(self, job: Job) -> None:
        """RQ's worker kills a horse that runs a minute past the job's timeout, and lets its heartbeat lapse: the time
        the task has spent held by a pause (WorkerHooks.hold) is added to the timeout it checks."""
        if getattr(self, "_job_timeout", (None,))[0] != job.id:
            self._job_timeout = (job.id, job.timeout)
        if not job.timeout or job.timeout < 0:
            return
        meta = job.get_meta(refresh=True) or {}
        held = float(meta.get("paused_seconds") or 0)
        if meta.get("paused") and meta.get("paused_at"):
            held += max(0.0, time.time() - float(meta["paused_at"]))
        job.timeout = int(self._job_timeout[1] + held)

    # --- Redis outages -----------------------------------------------------------------------------
    def maintain_heartbeats(self, job: Job, execution: Execution):
        try:
            self._stretch_for_pause(job)
            super().maintain_heartbeats(job, execution)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.warning("Redis is unreachable (%s); the task goes on and the heartbeat will be sent again", exc)

    def work(self, burst: bool = False, **kwargs) -> bool:
        """RQ's work loop, started again when it quits on a Redis outage instead of on a stop request."""
        self._liveness = Liveness(self)  # started once RQ has registered this worker (register_birth)
        backoff = 1.0
        try:
            while True:
                try:
                    worked = super().work(burst=burst, **kwargs)
                except (redis.ConnectionError, redis.TimeoutError) as exc:
                    worked = False
                    log.error("Worker %s: Redis is unreachable (%s)", self.name, exc)
                if burst or self._stop_requested or self._shutdown_requested_date:
                    return worked
                log.warning("Worker %s: the work loop stopped (Redis outage?); starting it again in %.0f s",
                            self.name, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, OUTAGE_BACKOFF_MAX_SECONDS)
                self._stop_requested = False
        finally:
            if self._liveness.is_alive():
                self._liveness.stop()

    def register_birth(self):
        super().register_birth()
        # Only now: an earlier beat would write RQ's worker record first and RQ would refuse the name as taken.
        liveness = getattr(self, "_liveness", None)
        if liveness is not None:
            if liveness.is_alive():
                liveness.beat()
            else:
                liveness.start()

    # --- cold shutdown -----------------------------------------------------------------------------
    def request_force_stop(self, signum, frame):
        job = None
        if self.horse_pid and self._shutdown_requested_date and \
                time.time() - self._shutdown_requested_date.timestamp() >= 1:
            try:
                job = self.get_current_job()
            except Exception:
                job = None
        if job is not None:
            log.warning("[task %s] cold shutdown: stopping the task", job.id)
            self.kill_horse()
            self.wait_for_horse()
            try:
                record_abandoned_end(job, self.settings, FAILED,
                                     "The worker was shut down (a second stop signal) while the task ran. "
                                     + RETRY_BY_HAND.format(task_id=job.id))
                fail_in_rq(job, "Worker cold shutdown: the work-horse was stopped.")
            except Exception:
                log.exception("[task %s] could not record the cold shutdown", job.id)
        super().request_force_stop(signum, frame)


def fail_in_rq(job: Job, exc_string: str, requeue: bool = False) -> None:
    """Move a job whose horse is gone from started to failed, as RQ itself would much later. requeue: and back onto
    its queue, as RQ's FailedJobRegistry.requeue does, in the same transaction: nobody reads it failed meanwhile."""
    job.ended_at = now()
    queue = Queue(job.origin, connection=job.connection) if requeue else None
    with job.connection.pipeline() as pipe:
        for execution in job.get_executions():
            execution.delete(job=job, pipeline=pipe)
        record_job_failure(job, exc_string, pipe)
        if queue is not None:
            pipe.zrem(job.failed_job_registry.key, job.id)
            job.started_at = job.ended_at = None
            queue._enqueue_job(job, pipeline=pipe)
        pipe.execute()


class TarsScheduler(RQScheduler):
    """RQ's scheduler process, ending with its worker: RQ's own runs on after a worker killed by SIGKILL (the OOM
    killer), holding the queues' scheduler locks from the worker that replaces it."""

    worker_pid = 0

    def start(self):
        self.worker_pid = os.getpid()  # before the fork: the scheduler process reads it as its parent
        return super().start()

    settings: Settings | None = None  # its worker's: the daily budget may hold what is due (core/budget.hold_due)

    def enqueue_scheduled_jobs(self):
        if self.settings is not None and self._acquired_locks:
            if not self._scheduled_job_registries:
                self.prepare_registries()
            try:
                budget.hold_due(self.connection, self.settings, self._scheduled_job_registries)
            except Exception:  # RQ queues what is due regardless: holding it is the budget's courtesy
                log.exception("could not check the daily budget before queueing the scheduled tasks")
        return super().enqueue_scheduled_jobs()

    def heartbeat(self):
        if os.getppid() != self.worker_pid:
            log.warning("the worker of scheduler %s is gone: stopping it", self.name)
            self.request_stop()  # its loop stops at the next turn and releases the locks
        super().heartbeat()


class TarsWorker(TarsWorkerMixin, Worker):
    pass


class TarsSpawnWorker(TarsWorkerMixin, SpawnWorker):
    pass


class Liveness(threading.Thread):
    """Refreshes the worker's liveness hash and, while it holds the lease, runs the reaper."""

    def __init__(self, worker: TarsWorkerMixin):
        super().__init__(name=f"tars-liveness-{worker.name}", daemon=True)
        self.worker = worker
        # Its own connections: the main thread forks work-horses, and a pool shared across that is a hazard.
        self.connection = private_client(worker.connection)
        self.key = keys.worker_alive(worker.name)
        self._stopping = threading.Event()
        self.reaper = Reaper(self.connection, worker.settings, worker.name)
        self._last_reap = 0.0

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.beat()
                self.worker.take_over_scheduler(self.connection)
                if time.monotonic() - self._last_reap >= REAPER_INTERVAL_SECONDS and self.reaper.lead():
                    self._last_reap = time.monotonic()
                    self.reaper.reap()
                    self.reaper.expire_approvals()
                    self.reaper.release_held()
            except (redis.ConnectionError, redis.TimeoutError):
                pass  # Redis is away: the next beat tries again
            except Exception:
                log.exception("liveness/reaper pass failed; trying again")
            self._stopping.wait(WORKER_ALIVE_REFRESH_SECONDS)

    def beat(self) -> None:
        execution = self.worker.executions and next(iter(self.worker.executions.values()), None)
        fields = {"host": socket.gethostname(), "pid": os.getpid(), "horse_pid": self.worker.horse_pid or 0,
                  "task_id": execution.job_id if execution else "", "seen": time.time(),
                  "capabilities": ",".join(self.worker.capabilities)}  # what capabilities.served() reads
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=fields).expire(self.key, WORKER_ALIVE_TTL_SECONDS)
            pipe.hset(self.worker.key, TARS_MARK, 1)  # tells the reaper this RQ worker keeps a liveness hash
            pipe.execute()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)  # its connection is closed below: never under a beat still reading it
        try:
            self.connection.delete(self.key)
            self.reaper.resign()
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        self.connection.close()


class Reaper:
    """Fails running tasks whose worker is dead; one leader at a time (a lease in Redis)."""

    def __init__(self, connection: redis.Redis, settings: Settings, name: str):
        self.connection = connection
        self.settings = settings
        self.name = name
        self.leadership = Lease(connection, keys.REAPER_LEADER, name, REAPER_LEASE_SECONDS)

    def lead(self) -> bool:
        return self.leadership.hold()

    def resign(self) -> None:
        self.leadership.release()

    def reap(self) -> list[str]:
        """One pass: the ids of the tasks it failed."""
        reaped = []
        started = [pair for queue in capabilities.tars_queues(self.connection)
                   for pair in StartedJobRegistry(queue=queue).get_job_and_execution_ids(cleanup=False)]
        for job_id, execution_id in started:
            try:
                if self._reap_one(job_id, execution_id):
                    reaped.append(job_id)
            except Exception:
                log.exception("[task %s] the reaper could not check it", job_id)
        return reaped

    def expire_approvals(self) -> list[str]:
        """End the plans whose approval request timed out (PLAN_APPROVAL=on): no worker waits on them."""
        return TaskManager(self.connection, self.settings).expire_approvals()

    def release_held(self) -> int:
        """Start the tasks the daily budget held once it allows again: a new day, a raised budget (core/budget.py)."""
        return budget.release(self.connection, self.settings)

    def _reap_one(self, job_id: str, execution_id: str) -> bool:
        try:
            job = Job.fetch(job_id, connection=self.connection)
        except Exception:
            return False
        if job.get_status(refresh=False) != JobStatus.STARTED:
            return False
        try:
            execution = Execution.fetch(execution_id, job_id, self.connection) if execution_id else None
        except Exception:  # its record expired: the job's meta still names the worker
            execution = None
        meta = job.meta or {}
        finishing = job.func_name == FINISH_JOB_FUNCTION  # a plan's finishing job: no task of its own
        if "goal" not in meta and not finishing:
            return False  # not a TARS task
        worker_name = (execution.worker_name if execution else "") or meta.get("worker") or job.worker_name
        if not worker_name or self.connection.exists(keys.worker_alive(worker_name)):
            return False
        rq_worker_key = Worker.redis_worker_namespace_prefix + worker_name
        if self.connection.exists(rq_worker_key) and not self.connection.hexists(rq_worker_key, TARS_MARK):
            return False  # a plain RQ worker keeps no liveness hash: RQ's own maintenance watches it
        log.warning("[task %s] its worker %s is dead", job_id, worker_name)
        self._kill_orphan(job_id, meta)
        if finishing:
            return self._finisher_died(job, worker_name)
        # A dead worker is transient: while automatic retries are left the task is scheduled again (core/retries.py).
        told = record_abandoned_end(job, self.settings, FAILED, f"The worker running this task ({worker_name}) "
                                    "died.", transient=True)
        if job.get_status() == JobStatus.STARTED:  # not scheduled again for an automatic retry
            fail_in_rq(job, f"Worker {worker_name} died (found by the TARS reaper).")
            if meta.get("parent"):  # a plan's subtask: its plan may have nothing left that can go on
                TaskManager(self.connection, self.settings).tell_if_blocked(meta["parent"])
        return told

    def _finisher_died(self, job: Job, worker_name: str) -> bool:
        """A plan's finishing job lost its worker. It only tests the merged branch and ends the planned task, so it
        runs again; once FINISHER_WORKER_DEATHS of its workers died, the planned task ends failed, saying how to go
        on (`task retry` of the plan runs a new finishing job)."""
        parent = job.meta["plan_of"]
        deaths = int(job.meta.get("worker_deaths") or 0) + 1
        job.meta["worker_deaths"] = deaths
        job.save_meta()
        died = f"Worker {worker_name} died (found by the TARS reaper)."
        if self.connection.exists(keys.task_cancel(parent)):  # the plan was cancelled meanwhile: the cancel ended it
            fail_in_rq(job, died)
            return True
        if deaths < FINISHER_WORKER_DEATHS:  # told first: the run it starts tells its own test next
            event_log.append(self.connection, parent, "phase", "The worker testing the merged branch died; testing "
                             "it again.", "testing", {"finisher": job.id, "worker": worker_name})
            fail_in_rq(job, died, requeue=True)
            return True
        told = record_abandoned_end(
            Job.fetch(parent, connection=self.connection), self.settings, FAILED,
            f"The workers testing the merged branch died {deaths} times (the last, {worker_name}); every subtask is "
            f"merged into tars/{parent}. Test it again with: {plans.retry_command(parent)}")
        fail_in_rq(job, died)
        return told

    def _kill_orphan(self, job_id: str, meta: dict) -> None:
        """Kill the task's work-horse if it still runs here: a failed task must not go on beside its retry."""
        pid, started = meta.get("horse_pid"), meta.get("horse_started")
        if meta.get("host") != socket.gethostname() or not pid or started is None:
            return
        try:
            horse = psutil.Process(int(pid))
            if abs(horse.create_time() - float(started)) > 0.05:
                return  # the pid was reused by another process
            os.killpg(horse.pid, signal.SIGKILL)  # the horse leads its own process group (its commands too)
            horse.wait(timeout=5)
            log.warning("[task %s] killed its orphan work-horse %s", job_id, pid)
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
        except (psutil.AccessDenied, PermissionError, psutil.TimeoutExpired) as exc:
            log.error("[task %s] could not kill its orphan work-horse %s: %s", job_id, pid, exc)
