// composite.frag.glsl - brightfield plus every overlay, blended per fragment on the GPU.
//
// Template variables: none; the loader (liveaug/viewer/shaders.py) inlines the included files
// and resolves the feature blocks below before vispy links the program.
//
// Features (names tested by the ifdef blocks, one per overlay that is on):
//   GAMMA                 base image gamma != 1
//   STAIN0 STAIN1 STAIN2 STAIN3  stain slots: 0 virtual DAPI, 1 virtual membrane (model resolution),
//                         2, 3 real fluorescence channels (frame resolution)
//   APOPTOSIS             tint where the apoptosis probability passes a threshold
//   OUTLINES              cell outlines from the label texture, coloured by phase
//
// Uniforms (set by liveaug.viewer.visuals.CompositeVisual):
//   u_image (sampler2D)      brightfield at frame resolution: r8/r16 normalised by GL, or r32f
//   u_clim (vec2), u_gamma   base contrast window in the texture's normalised units
//   u_stain{i} (sampler2D), u_stain{i}_style (vec4: unused, opacity, unused, unused),
//   u_stain{i}_color (vec3), u_stain{i}_clim (vec2), u_stain{i}_tc (vec2: frame tc -> map tc)
//   u_apop, u_apop_style (vec4: unused, opacity, threshold, unused), u_apop_color (vec3),
//   u_apop_tc (vec2: frame tc -> apoptosis map tc)
//   u_labels, u_label_tc (vec2: frame tc -> label tc), u_label_step (vec2: one label texel
//   in tc), u_lut, u_lut_size (vec2),
//   u_phase_colors (8x1 RGBA, index = phase class), u_outline_style (vec4: unused, opacity,
//   selected-cell fill, unused)
#include "contrast.glsl"
#ifdef OUTLINES
#include "outlines.glsl"
#endif

varying vec2 v_texcoord;

uniform sampler2D u_image;
uniform vec2 u_clim;
#ifdef GAMMA
uniform float u_gamma;
#endif
#ifdef STAIN0
uniform sampler2D u_stain0;
uniform vec4 u_stain0_style;
uniform vec3 u_stain0_color;
uniform vec2 u_stain0_clim;
uniform vec2 u_stain0_tc;
#endif
#ifdef STAIN1
uniform sampler2D u_stain1;
uniform vec4 u_stain1_style;
uniform vec3 u_stain1_color;
uniform vec2 u_stain1_clim;
uniform vec2 u_stain1_tc;
#endif
#ifdef STAIN2
uniform sampler2D u_stain2;
uniform vec4 u_stain2_style;
uniform vec3 u_stain2_color;
uniform vec2 u_stain2_clim;
uniform vec2 u_stain2_tc;
#endif
#ifdef STAIN3
uniform sampler2D u_stain3;
uniform vec4 u_stain3_style;
uniform vec3 u_stain3_color;
uniform vec2 u_stain3_clim;
uniform vec2 u_stain3_tc;
#endif
#ifdef APOPTOSIS
uniform sampler2D u_apop;
uniform vec4 u_apop_style;
uniform vec3 u_apop_color;
uniform vec2 u_apop_tc;
#endif
#ifdef OUTLINES
uniform sampler2D u_labels;
uniform vec2 u_label_tc;
uniform vec2 u_label_step;
uniform sampler2D u_lut;
uniform vec2 u_lut_size;
uniform sampler2D u_phase_colors;
uniform vec4 u_outline_style;
#endif

// Add one stain, coloured, to rgb (additive light, like a fluorescence overlay).
vec3 add_stain(vec3 rgb, sampler2D tex, vec2 tc, vec4 style, vec3 color, vec2 clim) {
    float v = window_linear(texture2D(tex, tc).r, clim);
    return rgb + style.y * v * color;
}

void main() {
    if (v_texcoord.x < 0.0 || v_texcoord.x > 1.0 || v_texcoord.y < 0.0 || v_texcoord.y > 1.0) {
        discard;
    }
#ifdef GAMMA
    float g = window_gamma(texture2D(u_image, v_texcoord).r, u_clim, u_gamma);
#else
    float g = window_linear(texture2D(u_image, v_texcoord).r, u_clim);
#endif
    vec3 rgb = vec3(g);
#ifdef STAIN0
    rgb = add_stain(rgb, u_stain0, v_texcoord * u_stain0_tc, u_stain0_style,
                    u_stain0_color, u_stain0_clim);
#endif
#ifdef STAIN1
    rgb = add_stain(rgb, u_stain1, v_texcoord * u_stain1_tc, u_stain1_style,
                    u_stain1_color, u_stain1_clim);
#endif
#ifdef STAIN2
    rgb = add_stain(rgb, u_stain2, v_texcoord * u_stain2_tc, u_stain2_style,
                    u_stain2_color, u_stain2_clim);
#endif
#ifdef STAIN3
    rgb = add_stain(rgb, u_stain3, v_texcoord * u_stain3_tc, u_stain3_style,
                    u_stain3_color, u_stain3_clim);
#endif
#ifdef APOPTOSIS
    float p = texture2D(u_apop, v_texcoord * u_apop_tc).r;
    float a = u_apop_style.y * smoothstep(u_apop_style.z - 0.1, u_apop_style.z + 0.1, p);
    rgb = mix(rgb, u_apop_color, a);
#endif
#ifdef OUTLINES
    vec2 mtc = v_texcoord * u_label_tc;
    float id = label_at(u_labels, mtc);
    if (id > 0.5) {
        vec4 entry = lut_entry(u_lut, u_lut_size, id);
        float phase = floor(entry.r * 255.0 + 0.5);
        vec3 pc = texture2D(u_phase_colors, vec2((phase + 0.5) / 8.0, 0.5)).rgb;
        float edge = is_edge(u_labels, mtc, u_label_step, id) * entry.a;
        float selected = entry.g;
        // a selected cell gets a light fill as well as a white outline
        float alpha = u_outline_style.y * max(edge, selected * u_outline_style.z);
        if (selected > 0.5 && edge > 0.5) {
            pc = vec3(1.0);
        }
        rgb = mix(rgb, pc, alpha);
    }
#endif
    gl_FragColor = vec4(clamp(rgb, 0.0, 1.0), 1.0);
}
