//! The morphological second opinion: MeCab (Debian `libmecab2`) with the IPA dictionary
//! (Debian `mecab-ipadic-utf8`), through the `mecab` crate. It splits a text into morphemes
//! and tags each; the person-name tags (名詞,固有名詞,人名,姓/名/一般) are what `no_cue`
//! reads. Nothing is downloaded: the dictionary is the Debian package's, at a fixed path.
//!
//! The dictionary is opened once per process, as a MeCab `Model`, and shared by all threads:
//! MeCab documents a model as thread-safe (taggers only read it, under its reader lock). Each
//! thread makes its own tagger and lattice from it on first use, as neither is thread-safe;
//! they are small and map nothing. (A tagger opened per thread mapped the 52 MB dictionary
//! once per thread, and the resident set counted every mapping's pages.)
//!
//! The `mecab` crate is a thin FFI layer with sharp edges, guarded here:
//! - `Model::new` does not report a failed open: it keeps a null handle, and any later call
//!   would crash. The dictionary files are checked first; then the open is judged by MeCab's
//!   global error text, which every failed open sets and a success leaves alone. It is read
//!   through a probe, a tagger that fails to open on purpose (an unknown option, no file
//!   read): the crate keeps its null handle, MeCab answers a null handle with the global
//!   text, and the probe's own failure has just emptied that text. Either failure is an
//!   [`AnalyserError`], never a silent rules-only scrub. (A tagger's own error text does not
//!   tell: libmecab 0.996 empties the global text after a failed `Tagger::new`.)
//! - Its string input panics on an interior NUL: NULs are sent as spaces (same byte length).
//! - `Lattice::clear` frees the sentence but keeps the pointer (freed again on the next
//!   sentence or on drop): never called; `set_sentence` clears the lattice itself.
//! - `Tagger::parse` reports a failed analysis ([`AnalyserError::Analyse`]);
//!   `Lattice::to_string` cannot (the crate would read a null pointer), but MeCab's writer
//!   fails only on a format error, and our fixed format reads four feature fields where every
//!   IPA dictionary entry, known or unknown, has at least seven.
//!
//! Output is asked in a format of our own (byte start, byte end, unknown-word flag, the first
//! four feature fields), so no node pointer is ever followed. Text goes line by line, at most
//! [`MAX_LINE`] chars at a time, so one lattice stays small whatever the input.

use mecab::{Lattice, Model, Tagger};
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

/// The IPA dictionary as Debian's `mecab-ipadic-utf8` installs it. Fixed on purpose: the
/// default dictionary of `/etc/mecabrc` is an alternative that `mecab-jumandic` can take
/// over, and JUMAN tags names differently.
pub(crate) const DICTIONARY_DIR: &str = "/var/lib/mecab/dic/ipadic-utf8";

/// Files MeCab needs in [`DICTIONARY_DIR`]; `dicrc` doubles as the resource file, so no
/// `/etc/mecabrc` is read.
const DICTIONARY_FILES: [&str; 5] = ["sys.dic", "matrix.bin", "char.bin", "unk.dic", "dicrc"];

/// Longest run of chars analysed in one call (longer lines are cut).
const MAX_LINE: usize = 4096;

/// Why the analyser cannot run. Carries paths only, never text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalyserError {
    /// A dictionary or lexicon file is missing or unreadable.
    #[error(
        "morphological analyser: {path} is missing or unreadable (install the Debian \
         packages mecab, libmecab-dev and mecab-ipadic-utf8; scripts/ensure-deps.sh does)"
    )]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// MeCab refused the dictionary (corrupt or of another MeCab version).
    #[error("morphological analyser: MeCab could not open the dictionary in {dir}")]
    Open {
        /// The dictionary directory.
        dir: PathBuf,
    },
    /// MeCab failed on a line (its lattice could not be built); the line is not carried.
    #[error("morphological analyser: MeCab could not analyse a line with the dictionary in {dir}")]
    Analyse {
        /// The dictionary directory.
        dir: PathBuf,
    },
    /// The name-reading lexicon has no entries of a kind (wrong file or format).
    #[error("morphological analyser: {path} has no {kind} readings")]
    Lexicon {
        /// The lexicon file.
        path: PathBuf,
        /// Which readings are missing (`surname`, `given name`).
        kind: &'static str,
    },
}

/// What the analyser says a morpheme is; only the distinctions the name finder uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tag {
    /// 名詞,固有名詞,人名,姓.
    Surname,
    /// 名詞,固有名詞,人名,名.
    Given,
    /// 名詞,固有名詞,人名,一般 (a full name in the dictionary, or an unknown word).
    Person,
    /// 名詞,接尾,人名: 様, さん, 君, 氏… (a cue the rules already read).
    NameSuffix,
    /// Another proper noun (地域, 組織, 一般): 山口 and 太田 are places too.
    ProperNoun,
    /// 名詞,サ変接続: a verbal noun (来院, 説明, 同伴), never part of a name.
    VerbalNoun,
    /// 名詞,副詞可能: time and adverbial nouns (明日, 次回).
    Adverbial,
    /// Any other noun.
    Noun,
    /// 助詞, 助動詞: grammar.
    Particle,
    /// 記号.
    Symbol,
    /// Verbs, adjectives, everything else.
    Other,
}

/// One morpheme: chars `start..end` of the analysed text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Morpheme {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) tag: Tag,
    /// In the dictionary (false: MeCab guessed the tag of an unknown word).
    pub(crate) known: bool,
}

impl Morpheme {
    /// A person-name tag of any kind.
    pub(crate) fn is_name(&self) -> bool {
        matches!(self.tag, Tag::Surname | Tag::Given | Tag::Person)
    }
}

fn tag_of(f: &[&str]) -> Tag {
    match f {
        ["名詞", "固有名詞", "人名", "姓", ..] => Tag::Surname,
        ["名詞", "固有名詞", "人名", "名", ..] => Tag::Given,
        ["名詞", "固有名詞", "人名", ..] => Tag::Person,
        ["名詞", "接尾", "人名", ..] => Tag::NameSuffix,
        ["名詞", "固有名詞", ..] => Tag::ProperNoun,
        ["名詞", "サ変接続", ..] => Tag::VerbalNoun,
        ["名詞", "副詞可能", ..] => Tag::Adverbial,
        ["名詞", ..] => Tag::Noun,
        ["助詞" | "助動詞", ..] => Tag::Particle,
        ["記号", ..] => Tag::Symbol,
        _ => Tag::Other,
    }
}

/// MeCab's arguments: the dictionary, its `dicrc` as resource file, and our output format
/// (`\t` and `\n` are MeCab's own escapes; the arguments are split at spaces, so none).
fn model_args(dir: &Path) -> String {
    let dir = dir.display();
    let fmt = r"%ps\t%pe\t%s\t%f[0],%f[1],%f[2],%f[3]\n";
    format!(
        "-d {dir} -r {dir}/dicrc --node-format={fmt} --unk-format={fmt} --bos-format= \
         --eos-format=EOS\\n"
    )
}

/// Arguments no tagger opens with (an unknown option, refused before any file is read): the
/// probe of [`open_model`].
const PROBE_ARGS: &str = "--fgw-open-probe";

/// Every file MeCab will open in `dir` is there and readable.
fn check_files(dir: &Path) -> Result<(), AnalyserError> {
    for f in DICTIONARY_FILES {
        let path = dir.join(f);
        if std::fs::File::open(&path).is_err() {
            return Err(AnalyserError::Missing { path });
        }
    }
    Ok(())
}

/// A MeCab model that did open (the crate's `Model` may hold a null handle, see the module
/// doc); only [`open_model`] makes one.
struct OpenModel(Model);

// Sharing one model between threads rests on MeCab's thread-safety of `Model`, which the
// crate states as `unsafe impl Send + Sync for Model`; this stops compiling if it ever drops
// that, rather than this module adding an `unsafe impl` of its own.
const _: () = {
    const fn shared<T: Send + Sync>() {}
    shared::<OpenModel>()
};

/// Open the dictionary in `dir`, judging the open by MeCab's global error text (module doc).
fn open_model(dir: &Path) -> Result<OpenModel, AnalyserError> {
    check_files(dir)?;
    let probe = Tagger::new(PROBE_ARGS);
    let model = Model::new(&model_args(dir));
    if probe.get_last_error().is_empty() {
        Ok(OpenModel(model))
    } else {
        // Dropping a null model is a no-op in MeCab (`delete` of null).
        Err(AnalyserError::Open { dir: dir.to_path_buf() })
    }
}

/// The process's model. Never dropped: every thread's tagger points into it.
static MODEL: OnceLock<OpenModel> = OnceLock::new();

/// The model, opened on first use. A failed open is not kept: the next call tries again.
fn model() -> Result<&'static OpenModel, AnalyserError> {
    if let Some(m) = MODEL.get() {
        return Ok(m);
    }
    // One open at a time: threads racing here would map the dictionary more than once, and
    // MeCab's global error text may be shared by threads (libmecab built without TLS).
    static OPENING: Mutex<()> = Mutex::new(());
    let _one = OPENING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = MODEL.get() {
        return Ok(m);
    }
    let m = open_model(Path::new(DICTIONARY_DIR))?;
    Ok(MODEL.get_or_init(|| m))
}

/// This thread's tagger and lattice, made from the shared model.
struct ThreadAnalyser {
    tagger: Tagger,
    lattice: Lattice,
}

thread_local! {
    static ANALYSER: RefCell<Option<ThreadAnalyser>> = const { RefCell::new(None) };
}

/// Check that this thread can analyse (dictionary present and accepted), opening the model
/// if no thread has yet, and this thread's tagger and lattice.
pub(crate) fn ready() -> Result<(), AnalyserError> {
    ANALYSER.with(|a| {
        let mut a = a.borrow_mut();
        if a.is_none() {
            let OpenModel(model) = model()?;
            // MeCab refuses these only for a model that did not open.
            *a = Some(ThreadAnalyser {
                tagger: model.create_tagger(),
                lattice: model.create_lattice(),
            });
        }
        Ok(())
    })
}

/// Morphemes of `c` (chars), in text order, with char offsets. Lines are analysed one at a
/// time; line breaks and spaces are never inside a morpheme.
pub(crate) fn analyse(c: &[char]) -> Result<Vec<Morpheme>, AnalyserError> {
    ready()?;
    ANALYSER.with(|a| {
        let mut a = a.borrow_mut();
        let a = a.as_mut().ok_or(AnalyserError::Open { dir: DICTIONARY_DIR.into() })?;
        let mut out = Vec::new();
        let mut s = 0;
        while s < c.len() {
            let mut e = s;
            while e < c.len() && e - s < MAX_LINE && !matches!(c[e], '\n' | '\r') {
                e += 1;
            }
            if e > s {
                analyse_line(a, &c[s..e], s, &mut out)?;
            }
            s = if e < c.len() && matches!(c[e], '\n' | '\r') { e + 1 } else { e };
        }
        Ok(out)
    })
}

fn analyse_line(
    a: &mut ThreadAnalyser,
    c: &[char],
    offset: usize,
    out: &mut Vec<Morpheme>,
) -> Result<(), AnalyserError> {
    let mut line = String::with_capacity(c.len() * 3);
    // char index of every byte offset that starts a char (and of the end).
    let mut char_at = Vec::with_capacity(c.len() * 3 + 1);
    for (i, &ch) in c.iter().enumerate() {
        let ch = if ch == '\0' { ' ' } else { ch };
        for _ in 0..ch.len_utf8() {
            char_at.push(i);
        }
        line.push(ch);
    }
    char_at.push(c.len());
    a.lattice.set_sentence(line);
    if !a.tagger.parse(&a.lattice) {
        return Err(AnalyserError::Analyse { dir: DICTIONARY_DIR.into() });
    }
    for row in a.lattice.to_string().lines() {
        let mut f = row.split('\t');
        let (Some(bs), Some(be), Some(stat), Some(feat)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let (Ok(bs), Ok(be)) = (bs.parse::<usize>(), be.parse::<usize>()) else {
            continue;
        };
        let (Some(&start), Some(&end)) = (char_at.get(bs), char_at.get(be)) else {
            continue;
        };
        if start >= end {
            continue;
        }
        let feat: Vec<&str> = feat.split(',').collect();
        out.push(Morpheme {
            start: offset + start,
            end: offset + end,
            tag: tag_of(&feat),
            known: stat == "0",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &str) -> Vec<(String, Tag)> {
        let c: Vec<char> = t.chars().collect();
        analyse(&c)
            .expect("analyser ready")
            .iter()
            .map(|m| (c[m.start..m.end].iter().collect(), m.tag))
            .collect()
    }

    #[test]
    fn names_are_tagged_with_char_offsets() {
        let t = tags("説明は 中村一郎に行った。\n次回は小林直樹が");
        assert!(t.contains(&("中村".into(), Tag::Surname)), "{t:?}");
        assert!(t.contains(&("一郎".into(), Tag::Given)), "{t:?}");
        assert!(t.contains(&("小林".into(), Tag::Surname)), "{t:?}");
        assert!(t.contains(&("直樹".into(), Tag::Given)), "{t:?}");
        assert!(t.contains(&("が".into(), Tag::Particle)), "{t:?}");
    }

    #[test]
    fn nul_long_lines_and_empty_text_are_safe() {
        assert!(tags("").is_empty());
        assert!(tags("\n\n").is_empty());
        let t = tags("中村\0一郎");
        assert!(t.contains(&("一郎".into(), Tag::Given)), "{t:?}");
        let long: String = "胃体下部に潰瘍。".repeat(1200);
        let c: Vec<char> = long.chars().collect();
        let m = analyse(&c).expect("analyser ready");
        assert!(m.windows(2).all(|w| w[0].end <= w[1].start) && m.last().unwrap().end <= c.len());
    }

    #[test]
    fn a_missing_dictionary_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = check_files(dir.path()).expect_err("empty dir");
        assert_eq!(err, AnalyserError::Missing { path: dir.path().join("sys.dic") });
        assert!(err.to_string().contains("mecab-ipadic-utf8"), "{err}");
        assert_eq!(check_files(Path::new(DICTIONARY_DIR)), Ok(()));
    }

    #[test]
    fn a_dictionary_mecab_refuses_is_an_open_error() {
        // Every file present and readable, but sys.dic is not a dictionary: `check_files`
        // passes, `Model::new` fails and keeps a null handle.
        let dir = tempfile::tempdir().expect("tempdir");
        for f in DICTIONARY_FILES.iter().filter(|&&f| f != "sys.dic") {
            std::os::unix::fs::symlink(Path::new(DICTIONARY_DIR).join(f), dir.path().join(f))
                .expect("symlink");
        }
        std::fs::write(dir.path().join("sys.dic"), vec![0xA5u8; 4096]).expect("write");
        assert_eq!(check_files(dir.path()), Ok(()));
        let err = open_model(dir.path()).err().expect("a refused dictionary");
        assert_eq!(err, AnalyserError::Open { dir: dir.path().to_path_buf() });
        // The probe's own failure empties the error text again: a stale failure does not
        // stick to this thread.
        let probe = Tagger::new(PROBE_ARGS);
        assert_eq!(probe.get_last_error(), "");
    }

    /// Mappings of the dictionary's `sys.dic` in this process.
    fn sys_dic_mappings() -> usize {
        let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
        let sys_dic = format!("{DICTIONARY_DIR}/sys.dic");
        maps.lines().filter(|l| l.split_whitespace().nth(5) == Some(sys_dic.as_str())).count()
    }

    #[test]
    fn four_threads_map_the_dictionary_once() {
        // Counted while all 4 threads are alive, so per-thread state (which a thread's exit
        // would free) is still there to be counted.
        let analysed = std::sync::Arc::new(std::sync::Barrier::new(5));
        let counted = std::sync::Arc::new(std::sync::Barrier::new(5));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (analysed, counted) = (analysed.clone(), counted.clone());
                std::thread::spawn(move || {
                    let t = tags("説明は中村一郎に行った。");
                    analysed.wait();
                    counted.wait();
                    t
                })
            })
            .collect();
        analysed.wait();
        let mapped = sys_dic_mappings();
        counted.wait();
        for t in threads {
            let t = t.join().expect("thread");
            assert!(t.contains(&("中村".into(), Tag::Surname)), "{t:?}");
            assert!(t.contains(&("一郎".into(), Tag::Given)), "{t:?}");
        }
        assert_eq!(mapped, 1, "sys.dic mapped {mapped} times by 4 analysing threads");
    }
}
