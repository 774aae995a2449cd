//! XP for a finished review (every step completed by the reviewer) and achievements. The
//! formula (README "Review"):
//!
//! ```text
//! xp = 50                                  a finished review
//!    + min(lines_changed / 10, 200)        complexity (lines added + removed)
//!    + 10 × steps_completed                PR-QUEST's +10 per step
//!    + 5 × min(notes, 20)                  thoroughness
//!    + time bonus                          25 when finished within 1 h of starting,
//!                                          10 within 24 h, else 0
//! ```

use super::risk::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effort {
    pub lines_changed: u64,
    pub steps_completed: u64,
    pub notes: u64,
    /// From the reviewer's first action on the analysis to the last step.
    pub minutes: u64,
}

pub fn xp(e: Effort) -> i64 {
    let complexity = (e.lines_changed / 10).min(200);
    let steps = 10 * e.steps_completed;
    let notes = 5 * e.notes.min(20);
    let time = if e.minutes <= 60 {
        25
    } else if e.minutes <= 24 * 60 {
        10
    } else {
        0
    };
    i64::try_from(50 + complexity + steps + notes + time).unwrap_or(i64::MAX)
}

/// Achievements a finished review earns (each is awarded once per reviewer: the store keeps
/// the first). `finished` counts this review.
pub fn achievements(
    finished: i64,
    level: Level,
    notes_on_every_step: bool,
    lines_changed: u64,
) -> Vec<&'static str> {
    let mut out = Vec::new();
    if finished >= 1 {
        out.push("first-review");
    }
    if finished >= 10 {
        out.push("ten-reviews");
    }
    if level == Level::Critical {
        out.push("critical-catch");
    }
    if notes_on_every_step {
        out.push("thorough");
    }
    if lines_changed >= 1000 {
        out.push("big-diff");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_formula_of_the_readme() {
        let base = Effort {
            lines_changed: 0,
            steps_completed: 0,
            notes: 0,
            minutes: 0,
        };
        assert_eq!(xp(base), 75, "50 + the 1 h bonus");
        let e = Effort {
            lines_changed: 345,
            steps_completed: 4,
            notes: 3,
            minutes: 90,
        };
        assert_eq!(xp(e), 50 + 34 + 40 + 15 + 10);
        let huge = Effort {
            lines_changed: 100_000,
            steps_completed: 6,
            notes: 50,
            minutes: 3000,
        };
        assert_eq!(
            xp(huge),
            50 + 200 + 60 + 100,
            "complexity and notes are capped; no time bonus"
        );
        assert_eq!(
            achievements(10, Level::Critical, true, 1200),
            vec![
                "first-review",
                "ten-reviews",
                "critical-catch",
                "thorough",
                "big-diff"
            ]
        );
        assert_eq!(achievements(2, Level::Low, false, 10), vec!["first-review"]);
    }
}
