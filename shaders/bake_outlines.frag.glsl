// bake_outlines.frag.glsl - phase-coloured cell outlines, edge-tested once per analysis.
//
// Template variables: none (a plain gloo program).
//
// Run at label resolution (one target texel per label texel) into an RGBA8 texture whenever the
// labels, the cell table, the selection or the style change; the composite samples it nearest,
// so outlines stay one label texel wide and crisp. rgb = outline (or selected-cell fill) colour,
// a = its opacity.
//
// Uniforms: u_labels (sampler2D, float ids), u_label_step (vec2: one label texel in tc),
//   u_lut (sampler2D), u_lut_size (vec2), u_phase_colors (8x1 RGBA, index = phase class),
//   u_outline_style (vec4: unused, opacity, selected-cell fill, unused).
#include "outlines.glsl"

varying vec2 v_texcoord;

uniform sampler2D u_labels;
uniform vec2 u_label_step;
uniform sampler2D u_lut;
uniform vec2 u_lut_size;
uniform sampler2D u_phase_colors;
uniform vec4 u_outline_style;

void main() {
    vec4 result = vec4(0.0);
    float id = label_at(u_labels, v_texcoord);
    if (id > 0.5) {
        vec4 entry = lut_entry(u_lut, u_lut_size, id);
        float phase = floor(entry.r * 255.0 + 0.5);
        vec3 pc = texture2D(u_phase_colors, vec2((phase + 0.5) / 8.0, 0.5)).rgb;
        float edge = is_edge(u_labels, v_texcoord, u_label_step, id) * entry.a;
        float selected = entry.g;
        // a selected cell gets a light fill as well as a white outline
        float alpha = u_outline_style.y * max(edge, selected * u_outline_style.z);
        if (selected > 0.5 && edge > 0.5) {
            pc = vec3(1.0);
        }
        result = vec4(pc, alpha);
    }
    gl_FragColor = result;
}
