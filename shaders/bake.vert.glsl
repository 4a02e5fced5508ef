// bake.vert.glsl - the full-target quad of the bake passes (render to texture at map size).
//
// Template variables: none (a plain gloo program, not a vispy visual).
//
// Attributes: a_position (clip space, -1..1). Texture coordinate 0..1 over the target, row 0 of
// the target texture at v = 0, like every texture the composite samples.
attribute vec2 a_position;
varying vec2 v_texcoord;

void main() {
    v_texcoord = a_position * 0.5 + 0.5;
    gl_Position = vec4(a_position, 0.0, 1.0);
}
