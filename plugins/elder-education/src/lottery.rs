//! The seeded lottery, public so anyone can re-run a published draw.
//!
//! **Algorithm (version 1):**
//! 1. Sort the applicants by person id (ascending); each carries whether
//!    they are a returning learner.
//! 2. Seed a SplitMix64 generator with the 64-bit FNV-1a hash of the seed
//!    text (UTF-8 bytes).
//! 3. Fisher–Yates shuffle: for `i` from `n-1` down to `1`, draw `r` and
//!    swap positions `i` and `r % (i+1)`.
//! 4. Walk the shuffled order: an applicant wins a seat while seats remain,
//!    except that a returning learner is passed over once returning winners
//!    reach `floor(capacity * returning_percent / 100)`. Everyone not seated
//!    joins the waitlist in the order walked.
//!
//! The same seed and applicant list always give the same result.

/// One applicant: person id and whether they are returning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applicant {
    pub person_id: i64,
    pub returning: bool,
}

/// A draw's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draw {
    /// Person ids in shuffled order.
    pub order: Vec<i64>,
    /// Winners, in shuffled order.
    pub seated: Vec<i64>,
    /// Everyone else, in the order they join the waitlist.
    pub waitlist: Vec<i64>,
}

fn fnv1a(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The most seats returning learners may win.
pub fn returning_cap(capacity: i64, returning_percent: i64) -> i64 {
    capacity.max(0) * returning_percent.clamp(0, 100) / 100
}

/// Draw `capacity` seats among `applicants` with `seed`.
pub fn draw(seed: &str, applicants: &[Applicant], capacity: i64, returning_percent: i64) -> Draw {
    let mut list = applicants.to_vec();
    list.sort_by_key(|a| a.person_id);
    list.dedup_by_key(|a| a.person_id);
    let mut rng = SplitMix64(fnv1a(seed));
    for i in (1..list.len()).rev() {
        let j = (rng.next() % (i as u64 + 1)) as usize;
        list.swap(i, j);
    }
    let cap = returning_cap(capacity, returning_percent);
    let (mut seated, mut waitlist) = (Vec::new(), Vec::new());
    let mut returning_seated = 0;
    for a in &list {
        let room = (seated.len() as i64) < capacity;
        if room && (!a.returning || returning_seated < cap) {
            returning_seated += i64::from(a.returning);
            seated.push(a.person_id);
        } else {
            waitlist.push(a.person_id);
        }
    }
    Draw {
        order: list.iter().map(|a| a.person_id).collect(),
        seated,
        waitlist,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applicants(n: i64, returning_every: i64) -> Vec<Applicant> {
        (1..=n)
            .map(|id| Applicant {
                person_id: id,
                returning: id % returning_every == 0,
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_draw_whatever_the_input_order() {
        let a = applicants(120, 2);
        let mut reversed = a.clone();
        reversed.reverse();
        assert_eq!(
            draw("2026-spring/7", &a, 30, 20),
            draw("2026-spring/7", &reversed, 30, 20)
        );
        assert_ne!(
            draw("2026-spring/7", &a, 30, 20).order,
            draw("2026-spring/8", &a, 30, 20).order
        );
    }

    #[test]
    fn returning_learners_never_exceed_their_share() {
        let a = applicants(200, 2);
        for seed in ["a", "b", "c", "d"] {
            let d = draw(seed, &a, 30, 20);
            assert_eq!(d.seated.len(), 30);
            let returning = d.seated.iter().filter(|id| *id % 2 == 0).count();
            assert!(
                returning <= 6,
                "{returning} returning winners with seed {seed}"
            );
            assert_eq!(d.seated.len() + d.waitlist.len(), 200);
        }
    }

    #[test]
    fn fewer_applicants_than_seats_all_win() {
        let d = draw("x", &applicants(5, 100), 30, 0);
        assert_eq!(d.seated.len(), 5);
        assert!(d.waitlist.is_empty());
    }

    /// The generator is pinned: a change would break re-running old draws.
    #[test]
    fn the_algorithm_is_pinned() {
        let d = draw("pinned", &applicants(6, 100), 3, 0);
        assert_eq!(d.order, PINNED);
    }

    // Computed independently (a Python transcription of the algorithm).
    const PINNED: [i64; 6] = [6, 4, 2, 1, 5, 3];
}
