//! Float formatting that matches Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
//!
//! Prometheus prints floats with Go's shortest `%g` form in many user-visible
//! places (normalised `le`/`quantile` labels, template `$value`, API values).
//! Rust's `Display` differs (`1e6` prints as `1000000`), so this module
//! rebuilds Go's output from Rust's shortest round-trip digits.

/// Formats `f` exactly like Go's `strconv.FormatFloat(f, 'g', -1, 64)`.
pub fn go_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-1.2345e-7".
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    // Invariant: Rust's `{:e}` exponent is always a valid integer.
    let exp: i32 = exp.parse().unwrap_or(0);
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    // Go: %e is used when exp < -4 || exp >= eprec, with eprec = 6 for the
    // shortest representation (strconv/ftoa.go).
    if !(-4..6).contains(&exp) {
        return go_e(f);
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// Go's `strconv.FormatFloat(f, 'e', -1, 64)` for finite non-zero `f`.
fn go_e(f: f64) -> String {
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    // Invariant: Rust's `{:e}` exponent is always a valid integer.
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut out = String::with_capacity(24);
    out.push_str(mantissa);
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let a = exp.unsigned_abs();
    if a < 10 {
        out.push('0');
    }
    out.push_str(&a.to_string());
    out
}

/// Formats a sample value like the Prometheus HTTP API
/// (`util/jsonutil.MarshalFloat`): `%f` shortest, `%e` below 1e-6 or from
/// 1e21 on, `NaN`, `+Inf`, `-Inf`.
pub fn prom_api(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let a = f.abs();
    if a != 0.0 && !(1e-6..1e21).contains(&a) {
        return go_e(f);
    }
    // Rust's Display is the shortest round-trip form without exponent,
    // which is Go's 'f' with precision -1.
    format!("{f}")
}

/// Formats a ms timestamp as Prometheus's API does (`MarshalTimestamp`):
/// seconds with up to three decimals, e.g. `1435781451.781`, `10`, `1.500`.
pub fn prom_timestamp(t: i64) -> String {
    let neg = t < 0;
    let t = t.unsigned_abs();
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&(t / 1000).to_string());
    let frac = t % 1000;
    if frac != 0 {
        s.push_str(&format!(".{frac:03}"));
    }
    s
}

/// Go's `%.{prec}g` (fmt): at most `prec` significant digits, trailing
/// zeros dropped, exponent form when the exponent is < -4 or >= `prec`.
pub fn go_g_prec(f: f64, prec: usize) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let prec = prec.max(1);
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{:.*e}", prec - 1, f);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    // Invariant: Rust's `{:e}` exponent is always a valid integer.
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let m = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        let a = exp.unsigned_abs();
        return format!(
            "{m}e{}{}{a}",
            if exp < 0 { '-' } else { '+' },
            if a < 10 { "0" } else { "" }
        );
    }
    let decimals = (prec as i32 - 1 - exp).max(0) as usize;
    let s = format!("{:.*}", decimals, f);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Formats `f` like Prometheus's `formatOpenMetricsFloat` (model/textparse):
/// Go's `%g`, with `.0` appended to integral values.
pub fn openmetrics(f: f64) -> String {
    let mut s = go_g(f);
    if f.is_finite() && !s.contains(['e', '.']) {
        s.push_str(".0");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_go_shortest_g() {
        let cases = [
            (1.0, "1"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (100000.0, "100000"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-0.00099, "-0.00099"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-07"),
            (2.5, "2.5"),
            (-8.999999999999979e-05, "-8.999999999999979e-05"),
            (1e100, "1e+100"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (0.0, "0"),
        ];
        for (f, want) in cases {
            assert_eq!(go_g(f), want, "formatting {f:?}");
        }
    }

    #[test]
    fn api_values_and_timestamps_match_prometheus() {
        assert_eq!(prom_api(1e6), "1000000");
        assert_eq!(prom_api(0.5), "0.5");
        assert_eq!(prom_api(1e-7), "1e-07");
        assert_eq!(prom_api(1.5e21), "1.5e+21");
        assert_eq!(prom_api(0.0), "0");
        assert_eq!(prom_api(f64::NEG_INFINITY), "-Inf");
        assert_eq!(prom_timestamp(1_435_781_451_781), "1435781451.781");
        assert_eq!(prom_timestamp(1500), "1.500");
        assert_eq!(prom_timestamp(10_000), "10");
        assert_eq!(prom_timestamp(1005), "1.005");
    }

    #[test]
    fn go_percent_4g() {
        let cases = [
            (1.0, "1"),
            (300.0, "300"),
            (90.0615, "90.06"),
            (976.5625, "976.6"),
            (1e8, "1e+08"),
            (9_006_150.0, "9.006e+06"),
            (0.000123, "0.000123"),
            (1.23e-5, "1.23e-05"),
            (0.0, "0"),
            (123.0, "123"),
            (-1234.5, "-1234"),
            (12345.0, "1.234e+04"),
        ];
        for (f, want) in cases {
            assert_eq!(go_g_prec(f, 4), want, "{f}");
        }
    }

    #[test]
    fn openmetrics_appends_point_zero_to_integers() {
        assert_eq!(openmetrics(1.0), "1.0");
        assert_eq!(openmetrics(0.0), "0.0");
        assert_eq!(openmetrics(10.0), "10.0");
        assert_eq!(openmetrics(1e6), "1e+06");
        assert_eq!(openmetrics(0.25), "0.25");
        assert_eq!(openmetrics(f64::INFINITY), "+Inf");
    }
}
