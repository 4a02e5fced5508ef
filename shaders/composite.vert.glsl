// composite.vert.glsl - the frame quad of liveaug's composite visual.
//
// Template variables: (filled by vispy at link time)
//   $transform   visual (frame pixel) coordinates -> render coordinates
//
// Attributes: a_position (frame pixels), a_texcoord (0..1 over the frame).
attribute vec2 a_position;
attribute vec2 a_texcoord;
varying vec2 v_texcoord;

void main() {
    v_texcoord = a_texcoord;
    gl_Position = $transform(vec4(a_position, 0.0, 1.0));
}
