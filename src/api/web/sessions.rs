//! One-time login tokens and browser sessions of the web app, as a pure
//! table: the caller brings the clock and the random values, so the rules
//! (single use, short life, caps, constant-time comparison) are tested
//! without a server.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

/// How long a login link works: long enough to open a browser, short
/// enough that a link left in a terminal's scrollback is soon worthless.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);
/// Login tokens waiting to be used; the oldest goes first beyond this.
pub const MAX_LOGINS: usize = 16;
/// Browser sessions held; the oldest is logged out beyond this, so a
/// script calling `roost open` in a loop cannot grow the daemon's memory.
pub const MAX_SESSIONS: usize = 32;

/// The login tokens not used yet and the live session cookies.
#[derive(Debug, Default)]
pub struct Sessions {
    logins: VecDeque<(String, Instant)>,
    sessions: VecDeque<String>,
}

/// Compares two secrets without leaking, through timing, how much of a
/// guess was right.
fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    /// An empty table: no one is logged in when the daemon starts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers a new one-time login token made at `now`.
    pub fn add_login(&mut self, token: String, now: Instant) {
        self.logins
            .retain(|(_, at)| now.duration_since(*at) < LOGIN_TTL);
        while self.logins.len() >= MAX_LOGINS {
            self.logins.pop_front();
        }
        self.logins.push_back((token, now));
    }

    /// Trades the login token `given` for the new session `session`: true
    /// if `given` is a token made less than [`LOGIN_TTL`] ago and not used
    /// yet. The token is spent either way it matched.
    pub fn redeem(&mut self, given: &str, now: Instant, session: String) -> bool {
        let mut found = None;
        for (i, (token, _)) in self.logins.iter().enumerate() {
            if same(token, given) {
                found = Some(i);
            }
        }
        let Some(i) = found else { return false };
        let Some((_, at)) = self.logins.remove(i) else {
            return false;
        };
        if now.duration_since(at) >= LOGIN_TTL {
            return false;
        }
        while self.sessions.len() >= MAX_SESSIONS {
            self.sessions.pop_front();
        }
        self.sessions.push_back(session);
        true
    }

    /// True if `given` is a live session cookie (compared with each one in
    /// constant time).
    pub fn is_session(&self, given: &str) -> bool {
        let mut ok = false;
        for s in &self.sessions {
            ok |= same(s, given);
        }
        ok && !given.is_empty()
    }

    /// How many sessions are live.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_token_works_once() {
        let mut s = Sessions::new();
        let t0 = Instant::now();
        s.add_login("tok".into(), t0);
        assert!(s.redeem("tok", t0, "s1".into()));
        assert!(s.is_session("s1"));
        assert!(!s.redeem("tok", t0, "s2".into()), "a second use is refused");
        assert!(!s.is_session("s2"));
    }

    #[test]
    fn a_wrong_or_expired_token_makes_no_session() {
        let mut s = Sessions::new();
        let t0 = Instant::now();
        s.add_login("tok".into(), t0);
        assert!(!s.redeem("tik", t0, "s1".into()));
        assert!(!s.redeem("", t0, "s1".into()));
        assert!(!s.redeem("tok", t0 + LOGIN_TTL, "s1".into()));
        assert!(!s.is_session("s1"));
        assert!(!s.is_session(""));
        assert_eq!(s.session_count(), 0);
    }

    #[test]
    fn tables_are_capped_oldest_first() {
        let mut s = Sessions::new();
        let t0 = Instant::now();
        for i in 0..MAX_LOGINS + 3 {
            s.add_login(format!("t{i}"), t0);
        }
        assert!(!s.redeem("t0", t0, "x".into()), "the oldest token went");
        for i in 0..MAX_SESSIONS + 3 {
            let tok = format!("n{i}");
            s.add_login(tok.clone(), t0);
            assert!(s.redeem(&tok, t0, format!("s{i}")));
        }
        assert_eq!(s.session_count(), MAX_SESSIONS);
        assert!(!s.is_session("s0"), "the oldest session was logged out");
        assert!(s.is_session(&format!("s{}", MAX_SESSIONS + 2)));
    }
}
