package org.mmfuse.nn;

import java.util.Map;

/**
 * A fusion layer: its type and options, named as block.bootstrap.pytorch's constructors name them
 * (input_dims is implied by the inputs and, when given, checked). Tensor names are the module's own
 * ({@code linear0.weight}, ...), under {@code fusion.} in a model. Types and options (defaults in
 * parentheses; every {@code dropout*} option is accepted and is the identity at inference):
 * <ul>
 *   <li>{@code concat_mlp} (early fusion): output_dim, dimensions ([500, 500]), activation (relu); any
 *       number of vectors, concatenated, through an MLP ({@code mlp.linears.<j>});
 *   <li>{@code linear_sum}: output_dim, mm_dim (1200), activ_input (relu), activ_output (relu),
 *       normalize (false);
 *   <li>{@code mlb}, {@code mfb}, {@code mfh}: output_dim, mm_dim (1200), factor (2; mlb has none),
 *       activ_input (relu), activ_output (relu), normalize (false);
 *   <li>{@code mutan}: output_dim, mm_dim (1600), rank (15), shared (false), normalize (false);
 *   <li>{@code tucker}: output_dim, mm_dim (1600), shared (accepted; block.bootstrap's Tucker keeps two
 *       input projections whatever it says), normalize (false);
 *   <li>{@code block}: output_dim, mm_dim (1600), chunks (20), rank (15), shared (false), pos_norm
 *       (before_cat);
 *   <li>{@code block_tucker}: output_dim, mm_dim (1600), chunks (20), shared (false), pos_norm (before_cat);
 *   <li>{@code mcb} (compact bilinear): output_dim, mm_dim (16000), activ_output (relu); hashes
 *       {@code mcb.sketch1.h}, {@code mcb.sketch1.s}, {@code mcb.sketch2.h}, {@code mcb.sketch2.s};
 *       vectors, or two sequences sum-pooled over their kept positions;
 *   <li>{@code bilinear_pool} (full bilinear pooling of two feature maps [B, N, C1], [B, N, C2]):
 *       mean (true), signed_sqrt (true), eps (1e-12), l2 (true), output_dim (none: the C1*C2 pooled
 *       features; else {@code linear_out} to it). Masked positions count as zeros, and the mean divides by
 *       N, the padded length, as for a fixed-size feature map (with l2 on, the scale cancels);
 *   <li>{@code tfn} (Tensor Fusion Network, 2 or 3 vectors): output_dim, dimensions ([128]), activation
 *       (relu); the outer product of the inputs each with a 1 prepended, through {@code mlp.linears.<j>};
 *   <li>{@code lmf} (low-rank multimodal fusion, 2 or 3 vectors): output_dim, rank (4); tensors
 *       {@code factor<m>} [rank, C_m + 1, output_dim], {@code fusion_weights} [1, rank],
 *       {@code fusion_bias} [1, output_dim], as in Liu et al.'s code (there named by modality);
 *   <li>{@code gmu} (gated multimodal unit, 2 or 3 vectors): output_dim, bias (false); tensors
 *       {@code hidden0}, {@code hidden1}, {@code gate} (over both inputs concatenated):
 *       h = z tanh(hidden0 x0) + (1 - z) tanh(hidden1 x1), z = sigmoid(gate [x0; x1]); with three,
 *       {@code hidden<i>} and {@code gate<i>}: h = Σ_i sigmoid(gate_i [x0; x1; x2]) tanh(hidden_i x_i);
 *   <li>{@code cross_attention}: num_heads, bias (true), pool (mean): the first input's positions
 *       attend to the second's ({@code attention.*}, nn.MultiheadAttention's names), then pooled;
 *   <li>{@code co_attention} (both directions, as in ViLBERT): num_heads, bias (true), pool (mean),
 *       combine (concat or product); {@code a_to_b.*}, {@code b_to_a.*};
 *   <li>{@code late} (late fusion of per-modality scores [B, K]): combine (mean_logits, mean_probs or
 *       vote), weights (equal; a list of numbers, or "learned" for a {@code weights} [M] tensor). An
 *       absent modality is dropped from the sample's mean; a sample with none present gets zeros.
 * </ul>
 * With {@code shared}, the second input's module is the first's: its names ({@code linear1.*},
 * {@code merge_linear1.*}, ...) may be in the state dict, as PyTorch's state_dict lists a shared module
 * under both, and are ignored. Reference defaults that surprise: linear_sum, mlb, mfb, mfh and mcb end with a ReLU after their
 * output layer (activ_output='relu'); pass {@code "activ_output": "none"} for raw logits.
 */
public final class FusionSpec extends TypedSpec {
    private FusionSpec(String type, Map<String, Object> options) {
        super(type, options);
    }

    /** A fusion from its type and options (the JSON form's keys). */
    public static FusionSpec of(String type, Map<String, Object> options) {
        return new FusionSpec(type, options);
    }
}
