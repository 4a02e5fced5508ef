// idlabels.vert.glsl - one quad per digit of a cell-id label (liveaug.viewer.idlabels).
//
// Template variables: (filled by vispy at link time)
//   $visual_to_framebuffer   frame pixels -> framebuffer pixels (y up)
//   $framebuffer_to_render   framebuffer pixels -> render coordinates
//
// Attributes: a_anchor (label centre, frame pixels), a_offset (this corner's offset from the
// centre in framebuffer pixels: labels keep their size whatever the zoom), a_texcoord (atlas).
attribute vec2 a_anchor;
attribute vec2 a_offset;
attribute vec2 a_texcoord;
varying vec2 v_texcoord;

void main() {
    v_texcoord = a_texcoord;
    vec4 fb = $visual_to_framebuffer(vec4(a_anchor, 0.0, 1.0));
    fb.xy += a_offset * fb.w;
    gl_Position = $framebuffer_to_render(fb);
}
