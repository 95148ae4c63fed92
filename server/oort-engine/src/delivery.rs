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

/// Whether a rule can replay what it read since its last checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// The engine keeps no checkpoints (it was given no place for them).
    NoCheckpoints,
    /// The rule's source (of this type) cannot replay.
    SourceCannot(String),
    /// Checkpoints are kept and the source replays exactly what followed them.
    Yes,
    /// Checkpoints are kept, and the source (of this type) replays what
    /// followed them and may deliver again some of what they cover (a broker
    /// redelivering what was not acknowledged yet).
    Redelivers(String),
}

/// Whether every sink of a rule can take back what it delivered after a
/// checkpoint (what exactly once needs besides replay).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewind {
    /// Every sink can.
    Yes,
    /// A sink of this type cannot.
    SinkCannot(String),
}

/// What a rule asks for and what it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// What its `qos` asks for.
    pub requested: Guarantee,
    /// What it gets.
    pub provided: Guarantee,
    /// Why it gets less than it asks for; `None` when it gets what it asks.
    pub shortfall: Option<String>,
}

impl Delivery {
    /// The delivery of a rule that asks for `requested`, given how it can
    /// replay and rewind. At least once needs checkpoints and a source that
    /// replays; exactly once, besides, sinks that take back what they
    /// delivered after the checkpoint the rule restarts from.
    pub fn of(requested: Guarantee, replay: &Replay, rewind: &Rewind) -> Self {
        let (provided, shortfall) = match (requested, replay) {
            (Guarantee::AtMostOnce, _) => (Guarantee::AtMostOnce, None),
            (_, Replay::NoCheckpoints) => (
                Guarantee::AtMostOnce,
                Some("this server keeps no checkpoints: what the rule holds in memory is lost when it stops".into()),
            ),
            (_, Replay::SourceCannot(source)) => (
                Guarantee::AtMostOnce,
                Some(format!(
                    "a {source} source cannot replay what it read: the events the rule holds in memory (its \
                     buffers, open windows and undelivered results) are lost when the server stops; see \
                     docs/delivery.md"
                )),
            ),
            (Guarantee::AtLeastOnce, Replay::Yes | Replay::Redelivers(_)) => (Guarantee::AtLeastOnce, None),
            (Guarantee::ExactlyOnce, Replay::Redelivers(source)) => (
                Guarantee::AtLeastOnce,
                Some(format!(
                    "a {source} source may deliver again, after a restart, events that the last checkpoint \
                     covers; see docs/delivery.md"
                )),
            ),
            (Guarantee::ExactlyOnce, Replay::Yes) => match rewind {
                Rewind::Yes => (Guarantee::ExactlyOnce, None),
                Rewind::SinkCannot(sink) => (
                    Guarantee::AtLeastOnce,
                    Some(format!(
                        "a {sink} sink cannot take back what it delivered: after a restart, the results of the \
                         events replayed since the last checkpoint may be delivered again; see docs/delivery.md"
                    )),
                ),
            },
        };
        Self { requested, provided, shortfall }
    }

    /// One line for logs and the CLI: "at most once (qos asks for at least once): why".
    pub fn describe(&self) -> String {
        match &self.shortfall {
            None => self.provided.words().to_owned(),
            Some(why) => format!("{} (qos asks for {}): {why}", self.provided.words(), self.requested.words()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_gets_what_its_source_and_the_server_can_give() {
        let zero = Delivery::of(Guarantee::from_qos(0), &Replay::NoCheckpoints, &Rewind::Yes);
        assert_eq!(
            (zero.requested, zero.provided, zero.shortfall.as_deref()),
            (Guarantee::AtMostOnce, Guarantee::AtMostOnce, None)
        );
        assert_eq!(zero.describe(), "at most once");
        let mqtt = Delivery::of(Guarantee::from_qos(1), &Replay::SourceCannot("mqtt".into()), &Rewind::Yes);
        assert_eq!(mqtt.provided, Guarantee::AtMostOnce);
        assert!(mqtt.describe().starts_with("at most once (qos asks for at least once): a mqtt source cannot replay"));
        let log = Rewind::SinkCannot("log".into());
        let one = Delivery::of(Guarantee::from_qos(1), &Replay::Yes, &log);
        assert_eq!((one.provided, one.shortfall), (Guarantee::AtLeastOnce, None));
        let two = Delivery::of(Guarantee::from_qos(2), &Replay::Yes, &log);
        assert_eq!((two.requested, two.provided), (Guarantee::ExactlyOnce, Guarantee::AtLeastOnce));
        assert!(two.describe().contains("a log sink cannot take back"), "{}", two.describe());
        let file = Delivery::of(Guarantee::from_qos(2), &Replay::Yes, &Rewind::Yes);
        assert_eq!((file.provided, file.shortfall), (Guarantee::ExactlyOnce, None));
        let broker = Delivery::of(Guarantee::from_qos(2), &Replay::Redelivers("mqtt".into()), &Rewind::Yes);
        assert_eq!(broker.provided, Guarantee::AtLeastOnce);
        assert!(broker.describe().contains("a mqtt source may deliver again"), "{}", broker.describe());
    }
}
