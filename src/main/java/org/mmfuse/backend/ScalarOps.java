package org.mmfuse.backend;

import java.util.List;
import org.mmfuse.Backend;
import org.mmfuse.Tensor;

/** Plain loops on one thread: the readable reference that every other backend is tested against. */
final class ScalarOps extends HostOps {
    @Override
    public Backend backend() {
        return Backend.SCALAR;
    }

    @Override
    protected void gather(BlockCopy plan, List<Tensor> pieces, Tensor whole) {
        if (plan.elements() == 0) return; // also spares a loop over rows of nothing
        float[] out = whole.array();
        int wholeWidth = (int) plan.wholeWidth;
        for (int r = 0; r < plan.rows; r++) {
            for (int i = 0; i < pieces.size(); i++) {
                float[] in = pieces.get(i).array();
                int width = (int) plan.width(i), offset = (int) plan.offset(i);
                for (int c = 0; c < width; c++) out[r * wholeWidth + offset + c] = in[r * width + c];
            }
        }
    }

    @Override
    protected void scatter(BlockCopy plan, Tensor whole, List<Tensor> pieces) {
        if (plan.elements() == 0) return;
        float[] in = whole.array();
        int wholeWidth = (int) plan.wholeWidth;
        for (int r = 0; r < plan.rows; r++) {
            for (int i = 0; i < pieces.size(); i++) {
                float[] out = pieces.get(i).array();
                int width = (int) plan.width(i), offset = (int) plan.offset(i);
                for (int c = 0; c < width; c++) out[r * width + c] = in[r * wholeWidth + offset + c];
            }
        }
    }
}
