package io.flinktrade.udf;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import pemja.core.PythonInterpreter;
import pemja.core.PythonInterpreterConfig;

/**
 * The Python interpreter this JVM embeds for a thread-mode job's Python operators (PEMJA's, one
 * per JVM: every operator's interpreter is a thread of it and shares its modules), started and
 * given the job's imports ahead of the job, on a thread of its own.
 *
 * <p>Without it the interpreter starts when the first Python operator initialises and the
 * operators then import flinktrade's modules (the events, the settings, the analytics core),
 * 2-4 s of the demo's tasks' start on a loaded machine, on the path to its first signal
 * (docs/benchmarks.md, session 33). Begun while the job is planned and the Kafka broker starts,
 * the work is done by the time the tasks start. The interpreter is configured as Flink's {@code
 * EmbeddedPythonEnvironmentManager} configures it for a local job (multi-thread, this JVM's
 * {@code PYTHONPATH}, the job's {@code python.executable}), so the one PEMJA starts is the one
 * the operators would have started. A failure here is only logged: the operators import the
 * same modules again and report what fails.
 */
public final class EmbeddedPython {

    private static final Logger LOG = LoggerFactory.getLogger(EmbeddedPython.class);

    private EmbeddedPython() {}

    /** Start the interpreter of {@code pythonExec} and run {@code code} in it, on a daemon thread
     * (returned, for a caller that waits). */
    public static Thread warmUp(String pythonExec, String code) {
        String pythonPath = System.getenv().getOrDefault("PYTHONPATH", "");
        Thread thread = new Thread(() -> run(pythonExec, pythonPath, code), "flinktrade-python-warm-up");
        thread.setDaemon(true);
        thread.start();
        return thread;
    }

    private static void run(String pythonExec, String pythonPath, String code) {
        long start = System.nanoTime();
        PythonInterpreterConfig config =
                PythonInterpreterConfig.newBuilder()
                        .setExcType(PythonInterpreterConfig.ExecType.MULTI_THREAD)
                        .addPythonPaths(pythonPath)
                        .setPythonExec(pythonExec)
                        .build();
        try (PythonInterpreter interpreter = new PythonInterpreter(config)) {
            interpreter.exec(code);
            LOG.info("embedded Python warmed up in {} ms", (System.nanoTime() - start) / 1_000_000);
        } catch (Throwable e) { // the operators import the same and report it
            LOG.warn("embedded Python warm-up failed (the job's operators import on their own)", e);
        }
    }
}
