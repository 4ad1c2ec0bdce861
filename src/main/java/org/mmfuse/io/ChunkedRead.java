package org.mmfuse.io;

import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;

/**
 * A file's run of fixed-size little-endian elements (a tensor's data), read a chunk of whole elements at a
 * time through one buffer: the run may pass 2 GB, which no ByteBuffer holds.
 */
final class ChunkedRead {
    /** Takes {@code count} elements, the first being element {@code first} of the run, at the buffer's start. */
    interface Chunk {
        void accept(ByteBuffer bytes, int first, int count);
    }

    /** Elements per chunk. */
    static final int ELEMENTS = 1 << 20;

    private ChunkedRead() {}

    /** The {@code bytes} at {@code position}, in elements of {@code elementBytes}, a chunk at a time to {@code chunk}. */
    static void read(FileChannel channel, long position, long bytes, int elementBytes, Chunk chunk) throws IOException {
        ByteBuffer buffer = ByteBuffer.allocate((int) Math.min(bytes, (long) ELEMENTS * elementBytes)).order(ByteOrder.LITTLE_ENDIAN);
        for (long done = 0; done < bytes; ) {
            buffer.clear().limit((int) Math.min(buffer.capacity(), bytes - done));
            while (buffer.hasRemaining()) {
                long at = position + done + buffer.position();
                if (channel.read(buffer, at) < 0) throw new EOFException("the file ends at byte " + at + ", inside a tensor's data");
            }
            buffer.flip();
            chunk.accept(buffer, (int) (done / elementBytes), buffer.limit() / elementBytes);
            done += buffer.limit();
        }
    }
}
