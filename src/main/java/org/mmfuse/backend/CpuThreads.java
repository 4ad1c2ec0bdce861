package org.mmfuse.backend;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.function.IntConsumer;

/**
 * The CPU kernels' worker threads: one per core beside the caller, which works too. After a job a
 * worker spins briefly before parking, as OpenMP's threads do, so that back-to-back kernels do not pay
 * a thread wake-up each (tens of microseconds here, as much as a whole mid-sized concatenation).
 *
 * <p>One job runs at a time. A call that finds the team busy (another thread's job, or a task that
 * itself asks for parallelism) runs its tasks on the calling thread: never a deadlock, never wrong,
 * only less parallel.
 */
final class CpuThreads {
    /** The shared team: availableProcessors() - 1 workers. */
    static final CpuThreads SHARED = new CpuThreads(Runtime.getRuntime().availableProcessors() - 1);

    /** How long an idle worker spins before parking. */
    private static final long SPIN_NANOS = 50_000;

    private final Thread[] workers;
    private final AtomicBoolean busy = new AtomicBoolean();
    private volatile Job current;

    /** One parallel call: its tasks are claimed by index until none is left. */
    private static final class Job {
        /** Cleared once the job is done: the team keeps its last job, which must not keep the kernel's arrays. */
        IntConsumer body;
        final int tasks;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger unfinished;
        volatile Throwable failure;

        Job(IntConsumer body, int tasks) {
            this.body = body;
            this.tasks = tasks;
            this.unfinished = new AtomicInteger(tasks);
        }

        void work() {
            for (int t; (t = next.getAndIncrement()) < tasks; ) {
                try {
                    body.accept(t);
                } catch (Throwable e) {
                    failure = e;
                } finally {
                    unfinished.decrementAndGet();
                }
            }
        }
    }

    private CpuThreads(int workerCount) {
        workers = new Thread[Math.max(workerCount, 0)];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Thread(this::workerLoop, "mmfuse-cpu-" + (i + 1));
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    /** The number of tasks of at most {@code per} items that cover {@code items} (no int overflow near 2^31). */
    static int tasks(int items, int per) {
        return (int) ((items + (long) per - 1) / per);
    }

    /** Where part {@code part} of {@code parts} near-even parts of {@code items} starts (no int overflow). */
    static int split(int items, int part, int parts) {
        return (int) ((long) items * part / parts);
    }

    /** The end of task {@code t}'s run of {@code per} items, at most {@code items} (no int overflow). */
    static int end(int items, int t, int per) {
        return (int) Math.min(items, (t + 1L) * per);
    }

    /** Threads a job runs on: the workers and the caller. */
    int threads() {
        return workers.length + 1;
    }

    /** Runs body(0) .. body(tasks - 1), spread over the team and the caller; returns when all are done. */
    void run(int tasks, IntConsumer body) {
        if (tasks <= 1 || workers.length == 0 || !busy.compareAndSet(false, true)) {
            for (int t = 0; t < tasks; t++) body.accept(t);
            return;
        }
        Job job = new Job(body, tasks);
        try {
            current = job;
            for (Thread w : workers) LockSupport.unpark(w);
            job.work();
            while (job.unfinished.get() > 0) Thread.onSpinWait();
        } finally {
            job.body = null; // every task has run: late workers only find the task counter past the end
            busy.set(false);
        }
        Throwable failure = job.failure;
        if (failure instanceof RuntimeException) throw (RuntimeException) failure;
        if (failure instanceof Error) throw (Error) failure;
        if (failure != null) throw new IllegalStateException(failure);
    }

    private void workerLoop() {
        Job done = null;
        while (true) {
            Job job = current;
            if (job != done) {
                job.work();
                done = job;
                continue;
            }
            long idleSince = System.nanoTime();
            while (current == done && System.nanoTime() - idleSince < SPIN_NANOS) Thread.onSpinWait();
            if (current == done) LockSupport.park(this); // run() unparks after publishing a job
        }
    }
}
