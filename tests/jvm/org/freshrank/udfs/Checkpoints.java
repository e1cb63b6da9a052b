package org.freshrank.udfs;

import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;

import java.io.IOException;
import java.util.Random;

/** What Flink may do to an accumulator between two rows: nothing, a serializer round trip
 * (a checkpoint and restore, or any RocksDB access), or a copy (the heap backend during a snapshot). */
final class Checkpoints {
    private Checkpoints() {
    }

    static <T> T maybeRestore(T acc, TypeSerializer<T> serializer, Random random, int oneIn) throws IOException {
        int roll = random.nextInt(oneIn);
        if (roll == 0) {
            DataOutputSerializer out = new DataOutputSerializer(64);
            serializer.serialize(acc, out);
            return serializer.deserialize(new DataInputDeserializer(out.getCopyOfBuffer()));
        }
        return roll == 1 ? serializer.copy(acc) : acc;
    }
}
