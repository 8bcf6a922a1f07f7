//! The journeys' weights (`--mix`) and the pick of the next journey.

use super::journey::Journey;

/// Relative weights of the journeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: Vec<(Journey, u32)>,
}

/// What a shop mostly sees: reads, some orders, few sign-ups.
pub const DEFAULT_MIX: &str =
    "browse=30,search=15,product=25,signup=5,login=5,checkout=10,orders=5,notifications=5";

impl Mix {
    /// Parses `browse=40,search=20,…`; journeys not named get weight 0.
    ///
    /// # Errors
    /// An unknown journey, a weight that is not a number, or all weights 0.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut weights: Vec<(Journey, u32)> = Journey::ALL.iter().map(|j| (*j, 0)).collect();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}`: expected journey=weight"))?;
            let slot = weights
                .iter_mut()
                .find(|(j, _)| j.name() == name.trim())
                .ok_or_else(|| {
                    let names: Vec<_> = Journey::ALL.iter().map(|j| j.name()).collect();
                    format!("unknown journey `{name}` (one of {})", names.join(", "))
                })?;
            slot.1 = weight
                .trim()
                .parse()
                .map_err(|_| format!("`{part}`: the weight is not a whole number"))?;
        }
        if weights.iter().all(|(_, w)| *w == 0) {
            return Err("every journey has weight 0".into());
        }
        Ok(Self { weights })
    }

    /// The journey for `roll` (any number; taken modulo the total weight).
    pub fn pick(&self, roll: u64) -> Journey {
        let total: u64 = self.weights.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut left = roll % total.max(1);
        for (journey, weight) in &self.weights {
            if left < u64::from(*weight) {
                return *journey;
            }
            left -= u64::from(*weight);
        }
        Journey::Browse
    }

    /// The weights, for the report.
    pub fn weights(&self) -> &[(Journey, u32)] {
        &self.weights
    }
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_MIX, Mix};
    use crate::load::journey::Journey;

    #[test]
    fn the_default_mix_names_every_journey() {
        let mix = Mix::parse(DEFAULT_MIX).expect("default mix");
        assert!(mix.weights().iter().all(|(_, w)| *w > 0));
    }

    #[test]
    fn a_mix_picks_journeys_in_proportion_to_their_weights() {
        let mix = Mix::parse("browse=3,checkout=1").expect("mix");
        let picks: Vec<_> = (0..8).map(|roll| mix.pick(roll)).collect();
        let checkouts = picks.iter().filter(|j| **j == Journey::Checkout).count();
        assert_eq!(checkouts, 2);
        assert!(
            !picks.contains(&Journey::Search),
            "unnamed journeys weigh 0"
        );
    }

    #[test]
    fn a_mix_rejects_unknown_journeys_bad_weights_and_all_zero() {
        assert!(Mix::parse("browse=1,fly=2").is_err());
        assert!(Mix::parse("browse=lots").is_err());
        assert!(Mix::parse("browse").is_err());
        assert!(Mix::parse("browse=0").is_err());
    }
}
