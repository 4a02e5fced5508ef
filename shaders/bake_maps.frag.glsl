// bake_maps.frag.glsl - virtual stains and apoptosis, coloured once per analysis.
//
// Template variables: none (a plain gloo program; the loader resolves the feature blocks).
//
// Run at map resolution into a float RGBA texture whenever a map or its style changes, so a
// frame's draw samples one texel instead of every map: rgb = what the stains add (opacity x
// window(value) x colour, summed), a = the apoptosis tint's opacity.
//
// Features: STAIN0 (virtual DAPI), STAIN1 (virtual membrane), APOPTOSIS.
// Uniforms: u_stain{i} (sampler2D), u_stain{i}_style (vec4: unused, opacity, unused, unused),
//   u_stain{i}_color (vec3), u_stain{i}_clim (vec2), u_stain{i}_tc (vec2: target tc -> map tc);
//   u_apop (sampler2D), u_apop_style (vec4: unused, opacity, threshold, unused),
//   u_apop_tc (vec2: target tc -> map tc).
#include "contrast.glsl"

varying vec2 v_texcoord;

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
#ifdef APOPTOSIS
uniform sampler2D u_apop;
uniform vec4 u_apop_style;
uniform vec2 u_apop_tc;
#endif

void main() {
    vec3 add = vec3(0.0);
    float alpha = 0.0;
#ifdef STAIN0
    add += u_stain0_style.y * window_linear(texture2D(u_stain0, v_texcoord * u_stain0_tc).r,
                                            u_stain0_clim) * u_stain0_color;
#endif
#ifdef STAIN1
    add += u_stain1_style.y * window_linear(texture2D(u_stain1, v_texcoord * u_stain1_tc).r,
                                            u_stain1_clim) * u_stain1_color;
#endif
#ifdef APOPTOSIS
    float p = texture2D(u_apop, v_texcoord * u_apop_tc).r;
    alpha = u_apop_style.y * smoothstep(u_apop_style.z - 0.1, u_apop_style.z + 0.1, p);
#endif
    gl_FragColor = vec4(add, alpha);
}
