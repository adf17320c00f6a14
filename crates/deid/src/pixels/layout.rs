//! Device layout profiles (`[[deid.pixels.layouts]]`): for a processor model at a given
//! resolution, where the field of view is and which regions are always masked. Detection
//! covers unknown devices; a profile fixes known ones, and rescues frames too dark to detect.

use serde::{Deserialize, Serialize};

/// The field's shape in pixel coordinates of the frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "shape", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FovShape {
    /// A circle: centre and radius.
    #[allow(missing_docs)]
    Circle { cx: f32, cy: f32, r: f32 },
    /// A rectangle: top-left corner, width and height.
    #[allow(missing_docs)]
    Rect { x: f32, y: f32, w: f32, h: f32 },
    /// A rectangle with its corners cut at 45 degrees by `corner` pixels.
    #[allow(missing_docs)]
    Octagon { x: f32, y: f32, w: f32, h: f32, corner: f32 },
    /// Any convex polygon, vertices in order.
    Polygon {
        /// `[x, y]` of each vertex.
        points: Vec<[f32; 2]>,
    },
}

impl FovShape {
    /// The shape as a convex polygon (a circle as 64 vertices, inscribed).
    pub fn polygon(&self) -> Vec<(f32, f32)> {
        match *self {
            FovShape::Circle { cx, cy, r } => (0..64)
                .map(|i| {
                    let a = i as f32 * std::f32::consts::TAU / 64.0;
                    (cx + r * a.cos(), cy + r * a.sin())
                })
                .collect(),
            FovShape::Rect { x, y, w, h } => vec![(x, y), (x + w, y), (x + w, y + h), (x, y + h)],
            FovShape::Octagon { x, y, w, h, corner: c } => vec![
                (x + c, y),
                (x + w - c, y),
                (x + w, y + c),
                (x + w, y + h - c),
                (x + w - c, y + h),
                (x + c, y + h),
                (x, y + h - c),
                (x, y + c),
            ],
            FovShape::Polygon { ref points } => points.iter().map(|p| (p[0], p[1])).collect(),
        }
    }
}

/// A region always blacked out (a status bar inside the field, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)] // x, y: top-left corner; w, h: size, in pixels
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// When a layout's field is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayoutUse {
    /// Detection first; the layout's field only when detection finds none (default).
    #[default]
    Fallback,
    /// Always the layout's field, never detection (a device whose frames fool detection).
    Fixed,
}

/// One device layout: a frame size, its field of view and the regions always masked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceLayout {
    /// Free name for reports (processor model), e.g. `evis-x1-1280`.
    pub name: String,
    /// Frame width the layout applies to.
    pub width: u32,
    /// Frame height the layout applies to.
    pub height: u32,
    /// The field of view.
    pub fov: FovShape,
    /// Regions masked even inside the field.
    #[serde(default)]
    pub mask: Vec<Rect>,
    /// When the layout's field is used (`use`).
    #[serde(default, rename = "use")]
    pub use_: LayoutUse,
}

/// The layout for a frame size, if one is configured (first match wins).
pub fn for_size(layouts: &[DeviceLayout], width: u32, height: u32) -> Option<&DeviceLayout> {
    layouts.iter().find(|l| l.width == width && l.height == height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_from_toml() {
        #[derive(Deserialize)]
        struct W {
            layouts: Vec<DeviceLayout>,
        }
        let w: W = toml::from_str(
            r#"
            [[layouts]]
            name = "proc-a"
            width = 1280
            height = 1024
            fov = { shape = "circle", cx = 820.0, cy = 512.0, r = 440.0 }
            mask = [{ x = 0, y = 0, w = 100, h = 20 }]
            use = "fixed"
            "#,
        )
        .unwrap();
        assert_eq!(w.layouts[0].use_, LayoutUse::Fixed);
        assert_eq!(for_size(&w.layouts, 1280, 1024).map(|l| l.name.as_str()), Some("proc-a"));
        assert!(for_size(&w.layouts, 720, 576).is_none());
        assert_eq!(w.layouts[0].fov.polygon().len(), 64);
    }
}
