//! What a rule's results survive: the guarantee its `qos` asks for, the one
//! the engine gives it, and why they differ (`docs/delivery.md`).

/// A delivery guarantee, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Guarantee {
    /// `qos` 0: a result may be lost.
    #[default]
    AtMostOnce,
    /// `qos` 1: no result is lost; one may be delivered twice.
    AtLeastOnce,
    /// `qos` 2: every result is delivered once.
    ExactlyOnce,
}

impl Guarantee {
    /// The guarantee of an eKuiper `qos` (0, 1, 2; anything above is 2).
    pub fn from_qos(qos: u32) -> Self {
        match qos {
            0 => Guarantee::AtMostOnce,
            1 => Guarantee::AtLeastOnce,
            _ => Guarantee::ExactlyOnce,
        }
    }

    /// As users say it: "at most once".
    pub fn words(self) -> &'static str {
        match self {
            Guarantee::AtMostOnce => "at most once",
            Guarantee::AtLeastOnce => "at least once",
            Guarantee::ExactlyOnce => "exactly once",
        }
    }
}

/// Why no rule gets more than at most once yet.
const NO_CHECKPOINTS: &str = "Oort does not yet checkpoint rule state or replay sources: what the rule holds in \
                              memory (its buffers, open windows and undelivered results) is lost when the server \
                              stops; see docs/delivery.md";

/// What a rule asks for and what it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What its `qos` asks for.
    pub requested: Guarantee,
    /// What it gets.
    pub provided: Guarantee,
    /// Why it gets less than it asks for; `None` when it gets what it asks.
    pub shortfall: Option<&'static str>,
}

impl Delivery {
    /// The delivery of a rule that asks for `requested`: at most once today,
    /// whatever it asks.
    pub fn of(requested: Guarantee) -> Self {
        let provided = Guarantee::AtMostOnce;
        let shortfall = (requested > provided).then_some(NO_CHECKPOINTS);
        Self { requested, provided, shortfall }
    }

    /// One line for logs and the CLI: "at most once (qos asks for at least once): why".
    pub fn describe(&self) -> String {
        match self.shortfall {
            None => self.provided.words().to_owned(),
            Some(why) => format!("{} (qos asks for {}): {why}", self.provided.words(), self.requested.words()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_that_asks_for_more_than_it_gets_is_told_why() {
        let zero = Delivery::of(Guarantee::from_qos(0));
        assert_eq!(
            (zero.requested, zero.provided, zero.shortfall),
            (Guarantee::AtMostOnce, Guarantee::AtMostOnce, None)
        );
        assert_eq!(zero.describe(), "at most once");
        let one = Delivery::of(Guarantee::from_qos(1));
        assert_eq!(one.provided, Guarantee::AtMostOnce);
        assert!(one.describe().starts_with("at most once (qos asks for at least once): Oort does not yet checkpoint"));
        assert_eq!(Delivery::of(Guarantee::from_qos(2)).requested, Guarantee::ExactlyOnce);
    }
}
