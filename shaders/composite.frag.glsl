// composite.frag.glsl - brightfield plus every overlay, blended per fragment on the GPU.
//
// Template variables: none; the loader (liveaug/viewer/shaders.py) inlines the included files
// and resolves the feature blocks below before vispy links the program.
//
// Per frame this samples the brightfield, the real fluorescence channels (frame resolution) and
// two textures baked once per analysis on the GPU at model resolution (bake_maps.frag.glsl:
// virtual stains + apoptosis tint, linear; bake_outlines.frag.glsl: phase-coloured outlines,
// nearest), so a frame costs a few texels whatever overlays are on.
//
// Features (names tested by the ifdef blocks, one per overlay group that is on):
//   GAMMA                 base image gamma != 1
//   STAIN2 STAIN3         real fluorescence channels 0 and 1 (frame resolution)
//   MAPS                  the baked virtual stains / apoptosis texture
//   OUTLINES              the baked outline texture
//
// Uniforms (set by liveaug.viewer.visuals.CompositeVisual):
//   u_image (sampler2D)      brightfield at frame resolution: r8/r16 normalised by GL, or r32f
//   u_clim (vec2), u_gamma   base contrast window in the texture's normalised units
//   u_stain{2,3} (sampler2D), u_stain{i}_style (vec4: unused, opacity, unused, unused),
//   u_stain{i}_color (vec3), u_stain{i}_clim (vec2), u_stain{i}_tc (vec2: frame tc -> map tc)
//   u_maps (sampler2D, rgb added, a = apoptosis opacity), u_maps_tc (vec2), u_apop_color (vec3)
//   u_outlines (sampler2D, rgb colour, a opacity), u_label_tc (vec2: frame tc -> label tc)
#include "contrast.glsl"

varying vec2 v_texcoord;

uniform sampler2D u_image;
uniform vec2 u_clim;
#ifdef GAMMA
uniform float u_gamma;
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
#ifdef MAPS
uniform sampler2D u_maps;
uniform vec2 u_maps_tc;
uniform vec3 u_apop_color;
#endif
#ifdef OUTLINES
uniform sampler2D u_outlines;
uniform vec2 u_label_tc;
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
#ifdef STAIN2
    rgb = add_stain(rgb, u_stain2, v_texcoord * u_stain2_tc, u_stain2_style,
                    u_stain2_color, u_stain2_clim);
#endif
#ifdef STAIN3
    rgb = add_stain(rgb, u_stain3, v_texcoord * u_stain3_tc, u_stain3_style,
                    u_stain3_color, u_stain3_clim);
#endif
#ifdef MAPS
    vec4 maps = texture2D(u_maps, v_texcoord * u_maps_tc);
    rgb = mix(rgb + maps.rgb, u_apop_color, maps.a);
#endif
#ifdef OUTLINES
    vec4 outline = texture2D(u_outlines, v_texcoord * u_label_tc);
    rgb = mix(rgb, outline.rgb, outline.a);
#endif
    gl_FragColor = vec4(clamp(rgb, 0.0, 1.0), 1.0);
}
