//! The kinds of sensitive data the detector reports.

use std::fmt;

/// A built-in detector type. Custom detectors from the rules have their own names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiType {
    /// Magnetic-stripe track 1 or 2 data (PCI: never to be stored).
    CardTrackData,
    /// Card security code next to a hotword (PCI: never to be stored).
    Cvv,
    /// Payment card number: issuer range and Luhn.
    CreditCard,
    /// US Social Security number.
    UsSsn,
    /// US Individual Taxpayer Identification Number.
    UsItin,
    /// ABA routing transit number.
    UsBankRouting,
    /// International Bank Account Number.
    IbanCode,
    /// Bank account number (only next to a hotword).
    BankAccount,
    /// E-mail address.
    EmailAddress,
    /// Phone number (NANP or E.164).
    PhoneNumber,
    /// IPv4 address.
    IpAddress,
    /// A date next to a birth hotword.
    DateOfBirth,
    /// US-style street address.
    StreetAddress,
    /// A person's name after a hotword or in a name field.
    Person,
    /// AWS access key id.
    AwsAccessKey,
    /// GitHub token.
    GithubToken,
    /// Slack token.
    SlackToken,
    /// `sk-` style API key (model providers).
    ApiKey,
    /// JSON Web Token.
    Jwt,
    /// PEM private key block.
    PrivateKey,
}

/// Each type's place in [`PiiType::ALL`], by declaration order: the
/// ranking is asked for in every comparison while overlaps are resolved.
const PRIORITY: [u8; PiiType::ALL.len()] = {
    let mut rank = [0; PiiType::ALL.len()];
    let mut i = 0;
    while i < rank.len() {
        rank[PiiType::ALL[i] as usize] = i as u8;
        i += 1;
    }
    rank
};

impl PiiType {
    /// Every built-in type, highest priority first (PCI data ranks highest).
    pub const ALL: [PiiType; 20] = [
        PiiType::CardTrackData,
        PiiType::Cvv,
        PiiType::CreditCard,
        PiiType::PrivateKey,
        PiiType::UsSsn,
        PiiType::UsItin,
        PiiType::IbanCode,
        PiiType::UsBankRouting,
        PiiType::BankAccount,
        PiiType::AwsAccessKey,
        PiiType::GithubToken,
        PiiType::SlackToken,
        PiiType::ApiKey,
        PiiType::Jwt,
        PiiType::EmailAddress,
        PiiType::PhoneNumber,
        PiiType::DateOfBirth,
        PiiType::StreetAddress,
        PiiType::Person,
        PiiType::IpAddress,
    ];

    /// The type's name in rules and output (`CREDIT_CARD`).
    pub fn name(self) -> &'static str {
        match self {
            PiiType::CardTrackData => "CARD_TRACK_DATA",
            PiiType::Cvv => "CVV",
            PiiType::CreditCard => "CREDIT_CARD",
            PiiType::UsSsn => "US_SSN",
            PiiType::UsItin => "US_ITIN",
            PiiType::UsBankRouting => "US_BANK_ROUTING",
            PiiType::IbanCode => "IBAN_CODE",
            PiiType::BankAccount => "BANK_ACCOUNT",
            PiiType::EmailAddress => "EMAIL_ADDRESS",
            PiiType::PhoneNumber => "PHONE_NUMBER",
            PiiType::IpAddress => "IP_ADDRESS",
            PiiType::DateOfBirth => "DATE_OF_BIRTH",
            PiiType::StreetAddress => "STREET_ADDRESS",
            PiiType::Person => "PERSON",
            PiiType::AwsAccessKey => "AWS_ACCESS_KEY",
            PiiType::GithubToken => "GITHUB_TOKEN",
            PiiType::SlackToken => "SLACK_TOKEN",
            PiiType::ApiKey => "API_KEY",
            PiiType::Jwt => "JWT",
            PiiType::PrivateKey => "PRIVATE_KEY",
        }
    }

    /// The type named `name`, if it is built in.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Rank when two findings overlap: lower wins. Its place in [`Self::ALL`].
    pub fn priority(self) -> usize {
        usize::from(PRIORITY[self as usize])
    }

    /// A credential: a key, token or private key, whose digits are its own.
    pub fn is_credential(self) -> bool {
        matches!(
            self,
            PiiType::PrivateKey
                | PiiType::AwsAccessKey
                | PiiType::GithubToken
                | PiiType::SlackToken
                | PiiType::ApiKey
                | PiiType::Jwt
        )
    }

    /// Default reporting threshold on the score.
    pub fn default_threshold(self) -> f32 {
        0.5
    }
}

impl fmt::Display for PiiType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priority_is_the_place_in_all_and_all_holds_each_type_once() {
        for (i, t) in PiiType::ALL.iter().enumerate() {
            assert_eq!(t.priority(), i, "{t:?}");
            assert_eq!(PiiType::from_name(t.name()), Some(*t));
        }
        let mut seen: Vec<_> = PiiType::ALL.to_vec();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), PiiType::ALL.len());
        // The last variant declared is in the table too.
        assert_eq!(PiiType::PrivateKey as usize, PiiType::ALL.len() - 1);
    }
}
