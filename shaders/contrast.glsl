// contrast.glsl - intensity windowing shared by the base image and the stain layers.
//
// Template variables: none (plain functions, included by the shaders that use them).
//
// Values arrive normalised by the texture format (r16: raw / 65535, r8: raw / 255, r32f: as is);
// limits are given in the same normalised units, so 12/16-bit data is never divided on the CPU.

// Map v into [0, 1] between lo and hi, then apply gamma.
float window_gamma(float v, vec2 lim, float gamma) {
    float t = clamp((v - lim.x) / max(lim.y - lim.x, 1e-12), 0.0, 1.0);
    return pow(t, gamma);
}

// Map v into [0, 1] between lo and hi (gamma 1: no pow per fragment).
float window_linear(float v, vec2 lim) {
    return clamp((v - lim.x) / max(lim.y - lim.x, 1e-12), 0.0, 1.0);
}
