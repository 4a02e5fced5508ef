// outlines.glsl - cell outlines from a label texture (edge test in the shader).
//
// Template variables: none (plain functions, included by the shaders that use them).
//
// Labels are float ids (exact below 2^24) in a nearest-sampled r32f texture. A texel is on the
// outline when it belongs to a cell and one of its 4 neighbours holds another id. The cell id is
// looked up in an RGBA8 id table (width lut_w texels): r = phase class index / 255,
// g = 1 when selected, b = apoptosis probability, a = 1 when the cell is in the table.

float label_at(sampler2D labels, vec2 tc) {
    return floor(texture2D(labels, tc).r + 0.5);
}

// 1.0 on a cell's inner border, else 0.0; `step` is one label texel in texture coordinates.
float is_edge(sampler2D labels, vec2 tc, vec2 step, float id) {
    if (id < 0.5) return 0.0;
    float e = 0.0;
    e += float(label_at(labels, tc + vec2(step.x, 0.0)) != id);
    e += float(label_at(labels, tc - vec2(step.x, 0.0)) != id);
    e += float(label_at(labels, tc + vec2(0.0, step.y)) != id);
    e += float(label_at(labels, tc - vec2(0.0, step.y)) != id);
    return min(e, 1.0);
}

// The id table entry of cell `id` (2-D table, lut_size = (width, height) in texels).
vec4 lut_entry(sampler2D lut, vec2 lut_size, float id) {
    float row = floor(id / lut_size.x);
    float col = id - row * lut_size.x;
    return texture2D(lut, (vec2(col, row) + 0.5) / lut_size);
}
