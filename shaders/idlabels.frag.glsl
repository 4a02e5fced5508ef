// idlabels.frag.glsl - cell-id digits: glyph coverage from the atlas in the layer's colour, with
// a one-texel dark halo so the digits stay readable on bright and dark parts of the image.
//
// Template variables: none.
//
// Uniforms: u_atlas (sampler2D, r8 coverage of the digits 0-9 side by side), u_texel (vec2:
// one atlas texel in texture coordinates), u_color (vec4).
uniform sampler2D u_atlas;
uniform vec2 u_texel;
uniform vec4 u_color;
varying vec2 v_texcoord;

void main() {
    float c = texture2D(u_atlas, v_texcoord).r;
    float halo = max(max(texture2D(u_atlas, v_texcoord + vec2(u_texel.x, 0.0)).r,
                         texture2D(u_atlas, v_texcoord - vec2(u_texel.x, 0.0)).r),
                     max(texture2D(u_atlas, v_texcoord + vec2(0.0, u_texel.y)).r,
                         texture2D(u_atlas, v_texcoord - vec2(0.0, u_texel.y)).r));
    float a = max(c, 0.7 * halo);
    if (a <= 0.0) {
        discard;
    }
    gl_FragColor = vec4(u_color.rgb * (c / a), u_color.a * a);
}
