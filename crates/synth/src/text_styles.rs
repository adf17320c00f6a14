//! Styles of text found inside the field of view besides a processor's light overlay: what
//! staff type in reporting software (near-black, dark blue, dark red) and what other
//! vendors' capture boards print (black text on a white label box). Used by the tests and
//! the benchmark of the burned-in text stage to plant text of every polarity and colour.

use super::overlay::{draw_text, OverlayFont, TextBox};
use image::{Rgb, RgbImage};

/// How a line of text is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextStyle {
    /// White: the processor overlay's usual style (light on dark or on mucosa).
    Light,
    /// Near-black text straight on the picture.
    NearBlack,
    /// Dark blue text (differs from mucosa mostly in hue).
    DarkBlue,
    /// Dark red text (close to the mucosa's own hue).
    DarkRed,
    /// Black text on an opaque white label box.
    BlackOnWhiteLabel,
}

impl TextStyle {
    /// Every style, light first.
    pub const ALL: [TextStyle; 5] = [
        TextStyle::Light,
        TextStyle::NearBlack,
        TextStyle::DarkBlue,
        TextStyle::DarkRed,
        TextStyle::BlackOnWhiteLabel,
    ];
    /// The four dark styles (text darker than the picture behind it).
    pub const DARK: [TextStyle; 4] = [
        TextStyle::NearBlack,
        TextStyle::DarkBlue,
        TextStyle::DarkRed,
        TextStyle::BlackOnWhiteLabel,
    ];

    /// Short name for file names and reports.
    pub fn name(self) -> &'static str {
        match self {
            TextStyle::Light => "light",
            TextStyle::NearBlack => "near-black",
            TextStyle::DarkBlue => "dark-blue",
            TextStyle::DarkRed => "dark-red",
            TextStyle::BlackOnWhiteLabel => "black-on-label",
        }
    }

    /// The ink colour.
    pub fn ink(self) -> [u8; 3] {
        match self {
            TextStyle::Light => [255, 255, 255],
            TextStyle::NearBlack => [16, 16, 20],
            TextStyle::DarkBlue => [20, 30, 140],
            TextStyle::DarkRed => [110, 8, 12],
            TextStyle::BlackOnWhiteLabel => [0, 0, 0],
        }
    }
}

/// Padding of a label box around its text, as a fraction of the font size.
const LABEL_PAD: f32 = 0.3;

/// Draws one line in `style` (see [`draw_text`] for `x`, `y`, `px_size`). For a label, the
/// white box is drawn first, around where the text will go. Returns the box to be masked:
/// the inked text, or the whole label.
pub fn draw_styled(
    img: &mut RgbImage,
    font: &OverlayFont,
    px_size: f32,
    x: i32,
    y: i32,
    text: &str,
    style: TextStyle,
) -> TextBox {
    if style != TextStyle::BlackOnWhiteLabel {
        return draw_text(img, font, px_size, x, y, text, style.ink());
    }
    let pad = (px_size * LABEL_PAD).round() as i32;
    let w = font.text_width(px_size, text).ceil() as i32;
    let (x0, y0) = ((x - pad).max(0), (y - pad).max(0));
    let x1 = (x + w + pad).min(img.width() as i32);
    let y1 = (y + px_size.ceil() as i32 + pad).min(img.height() as i32);
    if x1 <= x0 || y1 <= y0 {
        return TextBox::default();
    }
    for yy in y0..y1 {
        for xx in x0..x1 {
            img.put_pixel(xx as u32, yy as u32, Rgb([250, 250, 248]));
        }
    }
    draw_text(img, font, px_size, x, y, text, style.ink());
    TextBox { x: x0 as u32, y: y0 as u32, w: (x1 - x0) as u32, h: (y1 - y0) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overlay::{system_font, FontChoice};

    #[test]
    fn label_box_covers_its_text_and_is_white() {
        let f = system_font(FontChoice::IpaGothic).unwrap_or_else(|e| panic!("{e}"));
        let mut img = RgbImage::from_pixel(400, 100, Rgb([150, 60, 50]));
        let b = draw_styled(&mut img, &f, 30.0, 40, 30, "ID 1234567", TextStyle::BlackOnWhiteLabel);
        assert!(b.w > 150 && b.h >= 30, "{b:?}");
        assert_eq!(img.get_pixel(b.x + 1, b.y + 1).0, [250, 250, 248]);
        let dark = (b.y..b.y + b.h)
            .flat_map(|y| (b.x..b.x + b.w).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 60)
            .count();
        assert!(dark > 200, "{dark} dark pixels in the label");
        for s in TextStyle::DARK {
            let t = draw_styled(&mut img, &f, 24.0, 10, 5, "AB", s);
            assert!(t.w > 0, "{}", s.name());
        }
    }
}
