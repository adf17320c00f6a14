//! Shamir's secret sharing of a 32-byte secret over GF(2^8), byte by byte.
//!
//! The field is the AES one (x^8 + x^4 + x^3 + x + 1, 0x11b), as in SLIP-0039.
//! Byte `b` of the secret is the constant term of a polynomial of degree K-1 whose other K-1
//! coefficients are uniform random bytes (0 included: RUSTSEC-2024-0398 was a Shamir that left
//! 0 out); share `x` (1..=255) holds each polynomial's value at `x`. Any K shares give the
//! constant terms back by Lagrange interpolation at 0; fewer are consistent with every secret
//! equally (the tests check this exhaustively for small K). Multiplication has no tables and
//! no branches on data, so the time it takes says nothing about the bytes.
//!
//! Why not a crate: docs/decisions.md, "Recovery kit: Shamir shares".

use zeroize::Zeroizing;

/// Secret length in bytes.
pub(super) const LEN: usize = 32;

/// Multiplication in GF(2^8) mod 0x11b: shift-and-add with masks instead of branches.
fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut p = 0u8;
    for _ in 0..8 {
        p ^= a & 0u8.wrapping_sub(b & 1);
        a = (a << 1) ^ (0x1b & 0u8.wrapping_sub(a >> 7));
        b >>= 1;
    }
    p
}

/// Inverse of a non-zero element: a^254 (a^255 = 1). The exponent is public, so the
/// square-and-multiply may branch on it.
fn inv(a: u8) -> u8 {
    debug_assert_ne!(a, 0, "0 has no inverse");
    let (mut result, mut base, mut e) = (1u8, a, 254u8);
    while e > 0 {
        if e & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        e >>= 1;
    }
    result
}

/// The value at `x` of the polynomial `secret + c[0]·x + c[1]·x² + …` (Horner, from the
/// highest coefficient down to the secret).
fn eval(secret: u8, coefficients: &[u8], x: u8) -> u8 {
    coefficients.iter().rev().chain([&secret]).fold(0u8, |acc, c| mul(acc, x) ^ c)
}

/// One share: its x (1..=255) and the 32 polynomial values there.
pub(super) struct Share {
    pub(super) x: u8,
    pub(super) y: Zeroizing<[u8; LEN]>,
}

/// Splits `secret` into `n` shares at x = 1..=n, any `k` of which give it back; `random`
/// fills the coefficients (the system RNG; a fixed one in tests).
/// `1 <= k <= n <= 255` (the kit's own bounds are narrower: `KitParams`).
pub(super) fn split(
    secret: &[u8; LEN],
    k: u8,
    n: u8,
    random: impl FnOnce(&mut [u8]),
) -> Vec<Share> {
    assert!(1 <= k && k <= n, "threshold {k} of {n} shares");
    // Row j holds coefficient j+1 of all 32 polynomials.
    let mut coefficients = Zeroizing::new(vec![0u8; LEN * (k as usize - 1)]);
    random(&mut coefficients);
    (1..=n)
        .map(|x| {
            let mut y = Zeroizing::new([0u8; LEN]);
            let mut column = Zeroizing::new(vec![0u8; k as usize - 1]);
            for (b, out) in y.iter_mut().enumerate() {
                for (j, c) in column.iter_mut().enumerate() {
                    *c = coefficients[j * LEN + b];
                }
                *out = eval(secret[b], &column, x);
            }
            Share { x, y }
        })
        .collect()
}

/// The secret from shares with distinct non-zero x (Lagrange at 0). `None` if there are none,
/// or an x is 0 or repeated. All shares take part: with K or more consistent shares the result
/// is the secret; with fewer, or one altered, it is some other value (the caller checks).
pub(super) fn combine(shares: &[&Share]) -> Option<Zeroizing<[u8; LEN]>> {
    if shares.is_empty() {
        return None;
    }
    for (i, s) in shares.iter().enumerate() {
        if s.x == 0 || shares[..i].iter().any(|t| t.x == s.x) {
            return None;
        }
    }
    // l_i(0) = prod_{j != i} x_j / (x_j - x_i); subtraction is xor in GF(2^8).
    let weights: Vec<u8> = shares
        .iter()
        .map(|si| {
            shares
                .iter()
                .filter(|sj| sj.x != si.x)
                .fold(1u8, |acc, sj| mul(acc, mul(sj.x, inv(sj.x ^ si.x))))
        })
        .collect();
    let mut secret = Zeroizing::new([0u8; LEN]);
    for (out_b, b) in secret.iter_mut().zip(0..LEN) {
        *out_b = shares.iter().zip(&weights).fold(0u8, |acc, (s, w)| acc ^ mul(s.y[b], *w));
    }
    Some(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Schoolbook carry-less product, then reduction by 0x11b bit by bit: an independent
    /// reference for [`mul`].
    fn mul_reference(a: u8, b: u8) -> u8 {
        let mut wide = 0u16;
        for i in 0..8 {
            if b >> i & 1 == 1 {
                wide ^= (a as u16) << i;
            }
        }
        for bit in (8..16).rev() {
            if wide >> bit & 1 == 1 {
                wide ^= 0x11b << (bit - 8);
            }
        }
        wide as u8
    }

    #[test]
    fn field_arithmetic_is_the_aes_field() {
        // FIPS-197, section 4.2: {57}·{83} = {c1}, {57}·{13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xc1);
        assert_eq!(mul(0x57, 0x13), 0xfe);
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), mul_reference(a, b), "{a:#04x}·{b:#04x}");
            }
        }
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "inverse of {a:#04x}");
        }
        // 3 generates the multiplicative group: its powers hit all 255 non-zero elements.
        let mut seen = std::collections::BTreeSet::new();
        let mut p = 1u8;
        for _ in 0..255 {
            seen.insert(p);
            p = mul(p, 3);
        }
        assert_eq!((seen.len(), p), (255, 1));
    }

    #[test]
    fn horner_evaluates_the_polynomial() {
        // 7 + 5x + 9x² at x = 2, term by term.
        let x = 2u8;
        assert_eq!(eval(7, &[5, 9], x), 7 ^ mul(5, x) ^ mul(9, mul(x, x)));
        assert_eq!(eval(7, &[], x), 7, "threshold 1: every share is the secret");
        assert_eq!(eval(7, &[5, 9], 0), 7, "the value at 0 is the secret");
    }

    fn subsets(n: u8, k: u8) -> Vec<Vec<u8>> {
        (0u32..1 << n)
            .filter(|m| m.count_ones() == k as u32)
            .map(|m| (0..n).filter(|i| m >> i & 1 == 1).collect())
            .collect()
    }

    fn system_random(buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new().fill(buf).unwrap();
    }

    #[test]
    fn every_k_subset_gives_the_secret_back_and_fewer_do_not() {
        for n in 2..=9u8 {
            for k in 2..=n {
                let mut secret = [0u8; LEN];
                system_random(&mut secret);
                let shares = split(&secret, k, n, system_random);
                assert_eq!(
                    shares.iter().map(|s| s.x).collect::<Vec<_>>(),
                    (1..=n).collect::<Vec<_>>()
                );
                for subset in subsets(n, k) {
                    let picked: Vec<&Share> = subset.iter().map(|&i| &shares[i as usize]).collect();
                    assert_eq!(*combine(&picked).unwrap(), secret, "{k} of {n}: {subset:?}");
                }
                // More than K consistent shares: still the secret.
                let all: Vec<&Share> = shares.iter().collect();
                assert_eq!(*combine(&all).unwrap(), secret);
                // K-1 shares: some other value (with 32 random bytes, never the secret).
                let fewer: Vec<&Share> = shares.iter().take(k as usize - 1).collect();
                assert_ne!(*combine(&fewer).unwrap(), secret, "{k} of {n} from {} shares", k - 1);
            }
        }
    }

    #[test]
    fn fewer_than_k_shares_fit_every_secret_equally() {
        // K = 2, one share at x: for each secret byte, the 256 choices of the coefficient give
        // each share value exactly once, so the share's value says nothing about the secret.
        for x in 1..=9u8 {
            for s in 0..=255u8 {
                let mut hits = [0u16; 256];
                for a in 0..=255u8 {
                    hits[eval(s, &[a], x) as usize] += 1;
                }
                assert!(hits.iter().all(|&h| h == 1), "x={x} s={s}");
            }
        }
        // K = 3, two shares at x = 1 and 3: each pair of values comes from exactly one pair
        // of coefficients, whatever the secret.
        for s in [0u8, 1, 0x5a, 0x80, 0xff] {
            let mut hits = vec![0u8; 1 << 16];
            for a in 0..=255u8 {
                for b in 0..=255u8 {
                    let (y1, y3) = (eval(s, &[a, b], 1), eval(s, &[a, b], 3));
                    hits[(y1 as usize) << 8 | y3 as usize] += 1;
                }
            }
            assert!(hits.iter().all(|&h| h == 1), "s={s}");
        }
    }

    #[test]
    fn coefficients_are_drawn_fresh_and_can_be_zero() {
        let secret = [0x42u8; LEN];
        // All coefficients 0: every share is the secret itself (a valid, if unlucky, draw).
        let zero = split(&secret, 2, 3, |buf| buf.fill(0));
        assert!(zero.iter().all(|s| *s.y == secret));
        // Coefficient bytes as drawn: share x = 1 of 2-of-n is secret ^ c (mul by 1).
        let ones = split(&secret, 2, 3, |buf| buf.fill(0x0f));
        assert_eq!(*ones[0].y, [0x42 ^ 0x0f; LEN]);
        assert_eq!(*ones[1].y, [0x42 ^ mul(0x0f, 2); LEN]);
        let a = split(&secret, 2, 3, system_random);
        let b = split(&secret, 2, 3, system_random);
        assert_ne!(*a[0].y, *b[0].y, "two splits share coefficients");
    }

    #[test]
    fn shares_with_repeated_or_zero_x_are_refused() {
        let shares = split(&[9u8; LEN], 2, 3, system_random);
        assert!(combine(&[]).is_none());
        assert!(combine(&[&shares[0], &shares[0]]).is_none());
        let zero = Share { x: 0, y: Zeroizing::new([0u8; LEN]) };
        assert!(combine(&[&shares[1], &zero]).is_none());
    }
}
