//! Bandwidth cap of the uplink: a token bucket every request body goes through, whose rate is
//! `[uplink] max_bytes_per_sec` or, during a `[[uplink.schedule]]` window of the box's local
//! time, that window's rate. A hospital line is shared: the cap keeps daytime uploads from
//! crowding out the department's own traffic while the night goes at full speed.
//!
//! The bucket holds at most one second of the current rate, so after an idle spell a body
//! starts with at most one second's worth at once; over any longer span the rate holds.

use serde::{Deserialize, Serialize};
use std::num::NonZeroU64;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most `[[uplink.schedule]]` entries (a window per hour of the day is already more than a
/// schedule needs).
pub const MAX_SCHEDULE_ENTRIES: usize = 24;

/// One `[[uplink.schedule]]` entry, as written in the config.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleEntry {
    /// Start of the window, `HH:MM` local time (inclusive).
    pub from: String,
    /// End of the window, `HH:MM` local time (exclusive); before `from` the window wraps
    /// midnight.
    pub to: String,
    /// The cap inside the window in bytes/s; 0 = unlimited.
    pub max_bytes_per_sec: u64,
}

/// A schedule setting that is not usable: the key (`uplink.schedule[0].from`) and what it
/// must be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: expected {expected}")]
pub struct ScheduleError {
    /// The setting.
    pub key: &'static str,
    /// What it must be.
    pub expected: String,
}

/// Key names of the schedule entries, so errors name the entry (`ScheduleError::key` is
/// `&'static str` like every other config key).
macro_rules! schedule_keys {
    ($($i:literal)*) => {
        [$([
            concat!("uplink.schedule[", $i, "].from"),
            concat!("uplink.schedule[", $i, "].to"),
            concat!("uplink.schedule[", $i, "].max_bytes_per_sec"),
        ],)*]
    };
}
const SCHEDULE_KEYS: [[&str; 3]; MAX_SCHEDULE_ENTRIES] =
    schedule_keys!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23);

const MINUTES_PER_DAY: u16 = 24 * 60;

/// A time of day to the minute: minutes since local midnight, `0..1440`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// Parses `HH:MM` (24-hour clock, two digits each).
    pub fn parse(s: &str) -> Option<TimeOfDay> {
        let b = s.as_bytes();
        if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
            return None;
        }
        let num = |i: usize| u16::from(b[i] - b'0') * 10 + u16::from(b[i + 1] - b'0');
        let (h, m) = (num(0), num(3));
        (h < 24 && m < 60).then_some(TimeOfDay(h * 60 + m))
    }

    /// From hours and minutes; `None` out of range.
    pub fn from_hm(h: u32, m: u32) -> Option<TimeOfDay> {
        (h < 24 && m < 60).then(|| TimeOfDay((h * 60 + m) as u16))
    }

    /// The box's local time now.
    pub fn now_local() -> TimeOfDay {
        use chrono::Timelike;
        let t = chrono::Local::now().time();
        TimeOfDay((t.hour() * 60 + t.minute()) as u16)
    }
}

/// A cap in bytes/s; `None` is unlimited.
pub type RateCap = Option<NonZeroU64>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Window {
    from: TimeOfDay,
    to: TimeOfDay,
    cap: RateCap,
}

impl Window {
    fn contains(&self, t: TimeOfDay) -> bool {
        if self.from < self.to {
            self.from <= t && t < self.to
        } else {
            // Wraps midnight (from == to is refused when the schedule is built).
            t >= self.from || t < self.to
        }
    }
}

/// The parsed cap and schedule: which rate applies at a time of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateSchedule {
    default: RateCap,
    windows: Vec<Window>,
}

impl RateSchedule {
    /// Checks and parses `max_bytes_per_sec` and the schedule. A nonzero cap below
    /// `min_rate` (`uplink.min_upload_bytes_per_sec`) is refused: a body paced slower than
    /// that would be given up on by our own timeout (and cut by the hub).
    pub fn new(
        max_bytes_per_sec: u64,
        entries: &[ScheduleEntry],
        min_rate: u64,
    ) -> Result<RateSchedule, ScheduleError> {
        let cap = |key: &'static str, v: u64| -> Result<RateCap, ScheduleError> {
            if v != 0 && v < min_rate {
                return Err(ScheduleError {
                    key,
                    expected: format!(
                        "0 (unlimited) or at least uplink.min_upload_bytes_per_sec ({min_rate})"
                    ),
                });
            }
            Ok(NonZeroU64::new(v))
        };
        let default = cap("uplink.max_bytes_per_sec", max_bytes_per_sec)?;
        if entries.len() > MAX_SCHEDULE_ENTRIES {
            return Err(ScheduleError {
                key: "uplink.schedule",
                expected: format!("at most {MAX_SCHEDULE_ENTRIES} entries"),
            });
        }
        let mut windows = Vec::with_capacity(entries.len());
        for (e, [from_key, to_key, rate_key]) in entries.iter().zip(SCHEDULE_KEYS) {
            let time = |key: &'static str, s: &str| {
                TimeOfDay::parse(s).ok_or_else(|| ScheduleError {
                    key,
                    expected: "a local time HH:MM, 00:00 to 23:59".into(),
                })
            };
            let from = time(from_key, &e.from)?;
            let to = time(to_key, &e.to)?;
            if from == to {
                return Err(ScheduleError {
                    key: to_key,
                    expected: "a time other than `from` (for all day use uplink.max_bytes_per_sec)"
                        .into(),
                });
            }
            windows.push(Window { from, to, cap: cap(rate_key, e.max_bytes_per_sec)? });
        }
        Ok(RateSchedule { default, windows })
    }

    /// The cap at `t`: the first window containing it, else `max_bytes_per_sec`.
    pub fn cap_at(&self, t: TimeOfDay) -> RateCap {
        self.windows.iter().find(|w| w.contains(t)).map_or(self.default, |w| w.cap)
    }

    /// Estimated time to send `bytes` from `start` on, each minute at `line_rate` bytes/s
    /// (what the line achieves; `u64::MAX` if unknown) held under that minute's cap. `None`
    /// if nothing would ever go (a line rate of 0).
    pub fn time_to_send(&self, bytes: u64, start: TimeOfDay, line_rate: u64) -> Option<Duration> {
        let per_minute = |m: u16| {
            let rate = self.cap_at(TimeOfDay(m)).map_or(line_rate, |c| c.get().min(line_rate));
            u128::from(rate) * 60
        };
        let day: u128 = (0..MINUTES_PER_DAY).map(per_minute).sum();
        if bytes == 0 {
            return Some(Duration::ZERO);
        }
        if day == 0 {
            return None;
        }
        // Whole days at once, then minute by minute through the last (partial) day.
        let bytes = u128::from(bytes);
        let days = (bytes - 1) / day;
        let mut left = bytes - days * day;
        let mut nanos = days * 86_400 * NANOS as u128;
        let mut m = start.0;
        loop {
            let can = per_minute(m);
            if can >= left {
                nanos += left * 60 * NANOS as u128 / can;
                break;
            }
            left -= can;
            nanos += 60 * NANOS as u128;
            m = (m + 1) % MINUTES_PER_DAY;
        }
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// The lowest cap any time of day (`None` if it is unlimited all day): what a request's
    /// timeout must allow for.
    pub fn lowest_cap(&self) -> RateCap {
        std::iter::once(self.default).chain(self.windows.iter().map(|w| w.cap)).flatten().min()
    }
}

const NANOS: i128 = 1_000_000_000;

/// The bucket's arithmetic, clock passed in (tested without waiting). Tokens are kept in
/// nano-bytes (bytes x 10^9) so refills at any rate are exact integers.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// May go negative: bytes let through ahead of the rate, to be waited off.
    tokens: i128,
    last: Option<Instant>,
    cap: RateCap,
}

impl TokenBucket {
    /// An empty bucket: the first bytes already wait their share.
    pub(crate) fn new() -> TokenBucket {
        TokenBucket { tokens: 0, last: None, cap: None }
    }

    /// Takes `n` bytes at `now` under `cap`; returns how long to wait before sending them.
    pub(crate) fn reserve(&mut self, now: Instant, cap: RateCap, n: u64) -> Duration {
        let Some(rate) = cap else {
            // Unlimited: nothing owed, and nothing saved up for when a cap starts.
            *self = TokenBucket { tokens: 0, last: Some(now), cap: None };
            return Duration::ZERO;
        };
        let rate = i128::from(rate.get());
        if self.cap.is_some() {
            if let Some(last) = self.last {
                // Refills beyond one second are clamped below anyway; bounding the span
                // keeps the product far from overflow.
                let dt = now.saturating_duration_since(last).min(Duration::from_secs(2));
                self.tokens += dt.as_nanos() as i128 * rate;
            }
        } else {
            self.tokens = 0;
        }
        // At most one second of the current rate saved up; a debt is kept in bytes, so it
        // is waited off at the new rate after a change.
        self.tokens = self.tokens.min(rate * NANOS);
        self.last = Some(now);
        self.cap = cap;
        self.tokens -= i128::from(n) * NANOS;
        if self.tokens >= 0 {
            Duration::ZERO
        } else {
            let nanos = (-self.tokens + rate - 1) / rate;
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
    }
}

/// The uplink's shared throttle: one bucket for every body in flight, the schedule, and the
/// count of body bytes sent. Clones share all three.
#[derive(Debug, Clone)]
pub(crate) struct Throttle {
    schedule: Arc<RateSchedule>,
    state: Arc<Mutex<ThrottleState>>,
    sent: Arc<AtomicU64>,
}

#[derive(Debug)]
struct ThrottleState {
    bucket: TokenBucket,
    /// The cap looked up at `looked_up` (the schedule is read at most once a second).
    cap: RateCap,
    looked_up: Option<Instant>,
}

/// Most bytes read and sent as one piece of a body.
const MAX_PIECE: u64 = 64 * 1024;
/// Fewest, so a slow cap does not mean tiny writes.
const MIN_PIECE: u64 = 4 * 1024;

impl Throttle {
    pub(crate) fn new(schedule: RateSchedule) -> Throttle {
        Throttle {
            schedule: Arc::new(schedule),
            state: Arc::new(Mutex::new(ThrottleState {
                bucket: TokenBucket::new(),
                cap: None,
                looked_up: None,
            })),
            sent: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn schedule(&self) -> &RateSchedule {
        &self.schedule
    }

    /// The cap in force now (box local time).
    pub(crate) fn cap_now(&self) -> RateCap {
        self.schedule.cap_at(TimeOfDay::now_local())
    }

    /// Body bytes handed to the connection so far.
    pub(crate) fn sent(&self) -> &Arc<AtomicU64> {
        &self.sent
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ThrottleState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cap now, re-read from the schedule when a second has passed.
    fn current_cap(&self, state: &mut ThrottleState, now: Instant) -> RateCap {
        let stale = state.looked_up.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1));
        if stale {
            state.cap = self.cap_now();
            state.looked_up = Some(now);
        }
        state.cap
    }

    /// How many bytes to read for the next piece: about a tenth of a second at the cap, so
    /// pacing is smooth and a schedule change takes effect within a piece.
    pub(crate) fn piece_len(&self) -> u64 {
        let now = Instant::now();
        let mut state = self.lock();
        piece_len_for(self.current_cap(&mut state, now))
    }

    /// Waits until `n` more body bytes may go (the caller counts them in [`Self::sent`] once
    /// handed over).
    pub(crate) async fn pace(&self, n: u64) {
        let wait = {
            let now = Instant::now();
            let mut state = self.lock();
            let cap = self.current_cap(&mut state, now);
            state.bucket.reserve(now, cap, n)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

fn piece_len_for(cap: RateCap) -> u64 {
    match cap {
        None => MAX_PIECE,
        Some(r) => (r.get() / 10).clamp(MIN_PIECE, MAX_PIECE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TimeOfDay {
        TimeOfDay::parse(s).unwrap()
    }

    fn entry(from: &str, to: &str, rate: u64) -> ScheduleEntry {
        ScheduleEntry { from: from.into(), to: to.into(), max_bytes_per_sec: rate }
    }

    fn cap(v: u64) -> RateCap {
        NonZeroU64::new(v)
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(t("00:00"), TimeOfDay(0));
        assert_eq!(t("23:59"), TimeOfDay(23 * 60 + 59));
        assert_eq!(t("08:30"), TimeOfDay::from_hm(8, 30).unwrap());
        for bad in ["24:00", "12:60", "8:30", "08:3", "08-30", "0830", " 08:30", "+8:30", ""] {
            assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_first_matching_window_wins_and_windows_may_wrap_midnight() {
        let s = RateSchedule::new(
            1_000_000,
            &[
                entry("08:00", "18:00", 100_000),
                entry("12:00", "13:00", 500_000), // inside the first: never reached
                entry("22:00", "06:00", 0),       // wraps midnight: unlimited at night
            ],
            65536,
        )
        .unwrap();
        assert_eq!(s.cap_at(t("07:59")), cap(1_000_000));
        assert_eq!(s.cap_at(t("08:00")), cap(100_000), "from is inclusive");
        assert_eq!(s.cap_at(t("12:30")), cap(100_000), "the first match wins");
        assert_eq!(s.cap_at(t("17:59")), cap(100_000));
        assert_eq!(s.cap_at(t("18:00")), cap(1_000_000), "to is exclusive");
        assert_eq!(s.cap_at(t("21:59")), cap(1_000_000));
        assert_eq!(s.cap_at(t("22:00")), None);
        assert_eq!(s.cap_at(t("23:59")), None);
        assert_eq!(s.cap_at(t("00:00")), None);
        assert_eq!(s.cap_at(t("05:59")), None);
        assert_eq!(s.cap_at(t("06:00")), cap(1_000_000));
        assert_eq!(s.lowest_cap(), cap(100_000));

        let open = RateSchedule::new(0, &[], 65536).unwrap();
        assert_eq!(open.cap_at(t("12:00")), None);
        assert_eq!(open.lowest_cap(), None);
    }

    #[test]
    fn schedule_errors_name_the_entry_and_field() {
        let err = |max, entries: &[ScheduleEntry]| {
            RateSchedule::new(max, entries, 65536).unwrap_err().key
        };
        assert_eq!(err(1000, &[]), "uplink.max_bytes_per_sec", "below the minimum rate");
        let ok = entry("01:00", "02:00", 0);
        assert_eq!(err(0, &[ok.clone(), entry("25:00", "02:00", 0)]), "uplink.schedule[1].from");
        assert_eq!(err(0, &[entry("01:00", "2:00", 0)]), "uplink.schedule[0].to");
        assert_eq!(err(0, &[entry("01:00", "01:00", 0)]), "uplink.schedule[0].to");
        assert_eq!(
            err(0, &[ok.clone(), ok.clone(), entry("03:00", "04:00", 10)]),
            "uplink.schedule[2].max_bytes_per_sec"
        );
        assert_eq!(err(0, &vec![ok; MAX_SCHEDULE_ENTRIES + 1]), "uplink.schedule");
        let e = RateSchedule::new(0, &[entry("x", "02:00", 0)], 65536).unwrap_err();
        assert_eq!(
            e.to_string(),
            "uplink.schedule[0].from: expected a local time HH:MM, 00:00 to 23:59"
        );
        assert_eq!(SCHEDULE_KEYS[23][2], "uplink.schedule[23].max_bytes_per_sec");
    }

    #[test]
    fn time_to_send_follows_the_windows() {
        let s = RateSchedule::new(
            100_000,
            &[entry("08:00", "18:00", 65_536), entry("22:00", "06:00", 0)],
            65536,
        )
        .unwrap();
        let secs = |d: Option<Duration>| d.unwrap().as_secs_f64();
        // Daytime: the window's cap, under a faster line.
        assert_eq!(secs(s.time_to_send(65_536 * 60, t("09:00"), 1_000_000)), 60.0);
        // A slower line than the cap sets the pace.
        assert_eq!(secs(s.time_to_send(1_000 * 30, t("09:00"), 1_000)), 30.0);
        // Across 17:59 -> 18:00: one minute at 65536 B/s, then 100000 B/s.
        let d = s.time_to_send(65_536 * 60 + 100_000 * 30, t("17:59"), u64::MAX);
        assert_eq!(secs(d), 90.0);
        // At night the line alone; an unknown line rate while uncapped has no estimate.
        assert_eq!(secs(s.time_to_send(5_000_000, t("23:00"), 1_000_000)), 5.0);
        assert_eq!(s.time_to_send(1, t("23:00"), 0), None);
        assert_eq!(s.time_to_send(0, t("23:00"), 0), Some(Duration::ZERO));
        // Many days of backlog: whole days at once, the same answer as day by day.
        let day = 600 * 65_536 * 60 + 840 * 100_000 * 60; // line 100000: night at 100000 too
        let d = s.time_to_send(3 * day + 100_000 * 60, t("18:00"), 100_000);
        assert_eq!(secs(d), 3.0 * 86_400.0 + 60.0);
    }

    #[test]
    fn the_bucket_paces_at_the_rate() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = TokenBucket::new();
        // Empty at the start: 500 bytes at 1000 B/s wait half a second.
        assert_eq!(b.reserve(t0, cap(1000), 500), ms(500));
        // Sent on time: the next 500 wait another half second.
        assert_eq!(b.reserve(t0 + ms(500), cap(1000), 500), ms(500));
        // Asked early (at 600 ms, 400 ms of debt left): that plus the new bytes.
        assert_eq!(b.reserve(t0 + ms(600), cap(1000), 100), ms(500));
        // A long stream of pieces, each sent when allowed: the delays add up to size / rate.
        let mut b = TokenBucket::new();
        let (mut now, mut total) = (t0, Duration::ZERO);
        for _ in 0..1000 {
            let wait = b.reserve(now, cap(65536), 4096);
            now += wait;
            total += wait;
        }
        assert_eq!(total, Duration::from_nanos(1000 * 4096 * 1_000_000_000 / 65536));
    }

    #[test]
    fn the_bucket_saves_up_at_most_one_second() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = TokenBucket::new();
        assert_eq!(b.reserve(t0, cap(1000), 0), Duration::ZERO);
        // Idle for an hour: one second's worth goes at once, the rest at the rate.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(b.reserve(later, cap(1000), 1000), Duration::ZERO);
        assert_eq!(b.reserve(later, cap(1000), 250), ms(250));
    }

    #[test]
    fn a_rate_change_applies_to_the_debt() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut b = TokenBucket::new();
        assert_eq!(b.reserve(t0, cap(1000), 1000), ms(1000));
        // The window changed to 4000 B/s: 1000 bytes owed plus 1000 new, at the new rate.
        assert_eq!(b.reserve(t0, cap(4000), 1000), ms(500));
        // Unlimited: no wait, and no debt or savings carried into the next cap.
        assert_eq!(b.reserve(t0, None, 10_000_000), Duration::ZERO);
        assert_eq!(b.reserve(t0 + Duration::from_secs(5), cap(1000), 100), ms(100));
        // Rounding up: 1 byte at 3 B/s is 333 333 334 ns, never less than the rate allows.
        let mut b = TokenBucket::new();
        assert_eq!(b.reserve(t0, cap(3), 1), Duration::from_nanos(333_333_334));
    }

    #[test]
    fn pieces_are_a_tenth_of_a_second_within_bounds() {
        assert_eq!(piece_len_for(None), MAX_PIECE);
        assert_eq!(piece_len_for(cap(1024)), MIN_PIECE);
        assert_eq!(piece_len_for(cap(200_000)), 20_000);
        assert_eq!(piece_len_for(cap(100_000_000)), MAX_PIECE);
    }
}
