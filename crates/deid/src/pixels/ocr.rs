//! Tesseract (libtesseract through `tesseract-plumbing`, the safe layer under `leptess`),
//! `jpn+eng`, sparse-text page mode. Engines are expensive to start (~0.2 s, tens of MB for the
//! Japanese model) and not shareable between threads, so a fixed pool lends them out: memory
//! stays bounded by the pool size, whatever the backlog.

use std::ffi::CString;
use std::sync::{Condvar, Mutex};
use tesseract_plumbing::TessBaseApi;

#[derive(Debug, thiserror::Error)]
pub enum OcrError {
    #[error("tesseract could not start with languages {langs} (data path {datapath}): is tesseract-ocr-jpn installed?")]
    Init { langs: String, datapath: String },
    #[error("tesseract rejected setting {name}")]
    Variable { name: &'static str },
    #[error("tesseract rejected an image of {width}x{height}")]
    Image { width: u32, height: u32 },
    #[error("tesseract recognition failed on an image of {width}x{height}")]
    Recognize { width: u32, height: u32 },
}

/// One recognised word: its box in image pixels, Tesseract's confidence (0-100) and text.
/// The text may be an identifier: it lives only in memory and is never logged.
#[derive(Clone, PartialEq)]
pub(crate) struct Word {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
    pub conf: f32,
    pub text: String,
    /// Box (left, top, width, height) of the text line the word belongs to.
    pub line: (u32, u32, u32, u32),
}

impl std::fmt::Debug for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Word({}x{}+{}+{}, conf {:.0}, {} chars)",
            self.width,
            self.height,
            self.left,
            self.top,
            self.conf,
            self.text.chars().count()
        )
    }
}

/// Which Tesseract to start: languages and model directory (documented defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OcrSettings {
    /// `jpn+eng`: Japanese names and romaji, digits and Latin labels.
    pub languages: String,
    /// Directory holding `*.traineddata`; `None` = Tesseract's compiled-in default
    /// (Debian: /usr/share/tesseract-ocr/5/tessdata).
    pub datapath: Option<String>,
}

impl Default for OcrSettings {
    fn default() -> Self {
        OcrSettings { languages: "jpn+eng".into(), datapath: None }
    }
}

/// Tesseract page-segmentation modes the stage uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Psm {
    /// 11: sparse text, in no order (scattered labels).
    SparseText,
    /// 6: one uniform block of text.
    Block,
}

impl Psm {
    fn value(self) -> &'static std::ffi::CStr {
        match self {
            Psm::SparseText => c"11",
            Psm::Block => c"6",
        }
    }
}

pub(crate) struct OcrEngine {
    api: TessBaseApi,
    psm: Psm,
}

impl OcrEngine {
    pub(crate) fn start(s: &OcrSettings) -> Result<OcrEngine, OcrError> {
        let init = || OcrError::Init {
            langs: s.languages.clone(),
            datapath: s.datapath.clone().unwrap_or_else(|| "default".into()),
        };
        let langs = CString::new(s.languages.as_str()).map_err(|_| init())?;
        let dp = match &s.datapath {
            Some(p) => Some(CString::new(p.as_str()).map_err(|_| init())?),
            None => None,
        };
        let mut api = TessBaseApi::create();
        api.init_2(dp.as_deref(), Some(&langs)).map_err(|_| init())?;
        // 11 = sparse text: overlays are scattered labels, not paragraphs.
        set(&mut api, "tessedit_pageseg_mode", Psm::SparseText.value())?;
        // No dictionary bias: names and ids are not dictionary words.
        set(&mut api, "load_system_dawg", c"0")?;
        set(&mut api, "load_freq_dawg", c"0")?;
        // Overlay fonts are ~20-40 px high; a fixed 72 dpi fits Tesseract's size heuristics
        // and stops it estimating (and printing) a resolution per image.
        set(&mut api, "user_defined_dpi", c"72")?;
        Ok(OcrEngine { api, psm: Psm::SparseText })
    }

    /// Recognises an 8-bit grayscale image (row-major, `width` bytes per row) as sparse
    /// text.
    pub(crate) fn words(
        &mut self,
        gray: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Vec<Word>, OcrError> {
        self.words_as(gray, width, height, Psm::SparseText)
    }

    /// [`Self::words`] with a page-segmentation mode.
    pub(crate) fn words_as(
        &mut self,
        gray: &[u8],
        width: u32,
        height: u32,
        psm: Psm,
    ) -> Result<Vec<Word>, OcrError> {
        if self.psm != psm {
            set(&mut self.api, "tessedit_pageseg_mode", psm.value())?;
            self.psm = psm;
        }
        let bad = || OcrError::Image { width, height };
        let w = i32::try_from(width).map_err(|_| bad())?;
        let h = i32::try_from(height).map_err(|_| bad())?;
        self.api.set_image(gray, w, h, 1, w).map_err(|_| bad())?;
        self.api.recognize().map_err(|_| OcrError::Recognize { width, height })?;
        let tsv = self.api.get_tsv_text(0).map_err(|_| OcrError::Recognize { width, height })?;
        Ok(parse_tsv(&String::from_utf8_lossy(tsv.as_ref().to_bytes())))
    }
}

fn set(api: &mut TessBaseApi, name: &'static str, value: &std::ffi::CStr) -> Result<(), OcrError> {
    let n = CString::new(name).expect("static name");
    api.set_variable(&n, value).map_err(|_| OcrError::Variable { name })
}

/// Tesseract's TSV: level page block par line word left top width height conf text. Level-5
/// rows (words) with text are kept, each with the box of the level-4 row (line) before it.
fn parse_tsv(tsv: &str) -> Vec<Word> {
    let mut line = (0, 0, 0, 0);
    tsv.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(12, '\t').collect();
            if f.len() < 12 {
                return None;
            }
            let n = |i: usize| f[i].parse::<u32>().ok();
            let bx = (n(6)?, n(7)?, n(8)?, n(9)?);
            if f[0] == "4" {
                line = bx;
                return None;
            }
            let text = f[11].trim();
            if f[0] != "5" || text.is_empty() {
                return None;
            }
            Some(Word {
                left: bx.0,
                top: bx.1,
                width: bx.2,
                height: bx.3,
                conf: f[10].parse().ok()?,
                text: text.to_string(),
                line,
            })
        })
        .collect()
}

/// A fixed set of engines lent out one at a time; callers block while all are busy.
pub(crate) struct OcrPool {
    settings: OcrSettings,
    size: usize,
    state: Mutex<PoolState>,
    freed: Condvar,
}

struct PoolState {
    idle: Vec<OcrEngine>,
    started: usize,
}

impl OcrPool {
    /// Engines start lazily, on first use, so a box without images never loads the models.
    pub(crate) fn new(settings: OcrSettings, size: usize) -> OcrPool {
        OcrPool {
            settings,
            size: size.max(1),
            state: Mutex::new(PoolState { idle: Vec::new(), started: 0 }),
            freed: Condvar::new(),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Starts every engine not yet started.
    pub(crate) fn warm(&self) -> Result<(), OcrError> {
        loop {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.started >= self.size {
                return Ok(());
            }
            st.started += 1;
            drop(st);
            let e = OcrEngine::start(&self.settings);
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match e {
                Ok(e) => st.idle.push(e),
                Err(err) => {
                    st.started -= 1;
                    return Err(err);
                }
            }
            drop(st);
            self.freed.notify_one();
        }
    }

    /// Runs `f` with an engine. A failed start is reported, and the slot stays free.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut OcrEngine) -> T) -> Result<T, OcrError> {
        let mut engine = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(e) = st.idle.pop() {
                    break e;
                }
                if st.started < self.size {
                    st.started += 1;
                    drop(st);
                    match OcrEngine::start(&self.settings) {
                        Ok(e) => break e,
                        Err(err) => {
                            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                            st.started -= 1;
                            return Err(err);
                        }
                    }
                }
                st = self.freed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        // If `f` panics (the gateway catches panics per item and goes on), the engine is
        // dropped: the guard frees its slot, so the pool cannot run dry and block for good.
        let mut lent = Lent { pool: self, returned: false };
        let out = f(&mut engine);
        lent.returned = true;
        self.state.lock().unwrap_or_else(|p| p.into_inner()).idle.push(engine);
        self.freed.notify_one();
        Ok(out)
    }
}

/// An engine lent out by [`OcrPool::with`]; dropped without being returned, its slot is freed.
struct Lent<'a> {
    pool: &'a OcrPool,
    returned: bool,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if !self.returned {
            self.pool.state.lock().unwrap_or_else(|p| p.into_inner()).started -= 1;
            self.pool.freed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_words_only() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   1\t1\t0\t0\t0\t0\t0\t0\t100\t50\t-1\t\n\
                   4\t1\t1\t1\t1\t0\t8\t18\t80\t19\t-1\t\n\
                   5\t1\t1\t1\t1\t1\t10\t20\t30\t15\t91.5\tABC\n\
                   5\t1\t1\t1\t1\t2\t50\t20\t30\t15\t12\t \n";
        let w = parse_tsv(tsv);
        assert_eq!(w.len(), 1);
        assert_eq!((w[0].left, w[0].top, w[0].width, w[0].height), (10, 20, 30, 15));
        assert_eq!(w[0].text, "ABC");
        assert_eq!(w[0].line, (8, 18, 80, 19));
        assert!(!format!("{:?}", w[0]).contains("ABC"), "Debug must not show the text");
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    /// A panic while an engine is lent (caught per item by the gateway) frees its slot: with
    /// one engine, the next caller still gets one instead of waiting for good.
    #[test]
    fn a_panic_with_an_engine_frees_its_slot() {
        let pool = std::sync::Arc::new(OcrPool::new(OcrSettings::default(), 1));
        let p = pool.clone();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            p.with::<()>(|_| panic!("lost engine"))
        }));
        assert!(r.is_err());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(pool.with(|_| 7).map_err(|e| e.to_string()));
        });
        let got = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(got.expect("the pool ran dry: with() blocked"), Ok(7));
    }
}
