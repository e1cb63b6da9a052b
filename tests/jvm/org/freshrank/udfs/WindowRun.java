package org.freshrank.udfs;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.runtime.typeutils.InternalTypeInfo;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.util.CloseableIterator;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;

/**
 * Runs one of the job's windows in a local Flink job (a MiniCluster in this JVM), as the checks
 * of tests/jvm/ need it: `count` generated rows, event time from a TIMESTAMP_LTZ(3) column with a
 * bounded out-of-orderness watermark, two window subtasks, checkpoints every 100 ms, and one
 * failure halfway, after a checkpoint, from which the job resumes, so every state goes through its
 * serializer. Returns each output row by the BIGINT sequence number it carries; a row out twice
 * or a job that never failed ends the check.
 */
final class WindowRun {
    static final AtomicBoolean FAILED = new AtomicBoolean();

    private WindowRun() {
    }

    static Map<Long, RowData> run(GeneratorFunction<Long, RowData> nth, int count, RowType type, int timeIndex,
                                  long maxDelayMs, int seqIndex, String backend,
                                  Function<DataStream<RowData>, DataStream<RowData>> window) throws Exception {
        Configuration conf = new Configuration();
        conf.setString("state.backend.type", backend);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.enableCheckpointing(100);
        DataStream<RowData> rows = env
                .fromSource(new DataGeneratorSource<>(nth, count, RateLimiterStrategy.perSecond(count / 3.0),
                                InternalTypeInfo.of(type)),
                        WatermarkStrategy.<RowData>forBoundedOutOfOrderness(Duration.ofMillis(maxDelayMs))
                                .withTimestampAssigner((row, previous) -> row.getTimestamp(timeIndex, 3).getMillisecond()),
                        "events")
                .setParallelism(1)
                .map(new FailOnceAfterACheckpoint(count / 2), InternalTypeInfo.of(type))
                .setParallelism(1);
        Map<Long, RowData> out = new HashMap<>();
        try (CloseableIterator<RowData> results = window.apply(rows).executeAndCollect("window check")) {
            while (results.hasNext()) {
                RowData row = results.next();
                if (out.put(row.getLong(seqIndex), row) != null) {
                    fail("row " + row.getLong(seqIndex) + " came out twice");
                }
            }
        }
        if (!FAILED.get()) {
            fail("the job never failed and resumed from a checkpoint: raise the row count");
        }
        if (out.size() != count) {
            fail(count + " rows in, " + out.size() + " out");
        }
        return out;
    }

    static void fail(String message) {
        System.err.println("MISMATCH: " + message);
        System.exit(1);
    }

    /** Passes rows on; throws once, at the first row past `after` following a completed checkpoint. */
    static final class FailOnceAfterACheckpoint implements MapFunction<RowData, RowData>, CheckpointListener {
        private final long after;
        private long seen;
        private boolean checkpointed;

        FailOnceAfterACheckpoint(long after) {
            this.after = after;
        }

        @Override
        public RowData map(RowData row) {
            if (++seen > after && checkpointed && FAILED.compareAndSet(false, true)) {
                throw new IllegalStateException("injected failure, to resume from the checkpoint");
            }
            return row;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            checkpointed = true;
        }
    }
}
