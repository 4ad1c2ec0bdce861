package org.mmfuse.backend;

/**
 * One checked pooling call over two modalities: x [batch, locations, xDim] and y [batch, locations, yDim]
 * (locations is 1 for [batch, dim] vectors), row-major.
 */
public record PoolShape(int batch, int locations, int xDim, int yDim) {}
