//! Negotiating permessage-deflate (RFC 7692 §5, §7.1): the four parameters, the server's answer
//! to an offer and the client's check of that answer.

use super::DeflateConfig;
use crate::extension::ExtensionError;
use crate::handshake::ExtensionOffer;

/// The extension token (§7).
pub(super) const NAME: &str = "permessage-deflate";

const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// The parameters of one offer or response, checked (§7.1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Params {
    pub(super) server_no_context_takeover: bool,
    pub(super) client_no_context_takeover: bool,
    pub(super) server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    pub(super) client_max_window_bits: Option<Option<u8>>,
}

impl Params {
    /// Reads and checks the parameters of an offer or a response.
    ///
    /// §5: an offer is declined and a response fails the connection when "the negotiation
    /// offer/response contains an extension parameter not defined for use in an offer/response",
    /// "an extension parameter with an invalid value", or "multiple extension parameters with
    /// the same name".
    pub(super) fn parse(element: &ExtensionOffer) -> Result<Params, ExtensionError> {
        let mut params = Params::default();
        let mut seen = [false; 4];
        for (name, value) in &element.params {
            let index = [
                SERVER_NO_CONTEXT_TAKEOVER,
                CLIENT_NO_CONTEXT_TAKEOVER,
                SERVER_MAX_WINDOW_BITS,
                CLIENT_MAX_WINDOW_BITS,
            ]
            .iter()
            .position(|known| name.eq_ignore_ascii_case(known))
            .ok_or(ExtensionError::Negotiation(
                "unknown permessage-deflate parameter",
            ))?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(ExtensionError::Negotiation(
                    "repeated permessage-deflate parameter",
                ));
            }
            let value = value.as_deref();
            match index {
                // §7.1.1.1, §7.1.1.2: "This extension parameter has no value."
                0 | 1 if value.is_some() => {
                    return Err(ExtensionError::Negotiation(
                        "a no_context_takeover parameter has a value",
                    ))
                }
                0 => params.server_no_context_takeover = true,
                1 => params.client_no_context_takeover = true,
                // §7.1.2.1: server_max_window_bits "has a decimal integer value without
                // leading zeroes between 8 to 15, inclusive".
                2 => params.server_max_window_bits = Some(window_bits(value)?),
                _ => {
                    params.client_max_window_bits =
                        Some(value.map(|v| window_bits(Some(v))).transpose()?)
                }
            }
        }
        Ok(params)
    }

    /// The parameters as an element of `Sec-WebSocket-Extensions`.
    pub(super) fn to_element(self) -> ExtensionOffer {
        let mut params = Vec::new();
        if self.server_no_context_takeover {
            params.push((SERVER_NO_CONTEXT_TAKEOVER.to_owned(), None));
        }
        if self.client_no_context_takeover {
            params.push((CLIENT_NO_CONTEXT_TAKEOVER.to_owned(), None));
        }
        if let Some(bits) = self.server_max_window_bits {
            params.push((SERVER_MAX_WINDOW_BITS.to_owned(), Some(bits.to_string())));
        }
        if let Some(bits) = self.client_max_window_bits {
            params.push((
                CLIENT_MAX_WINDOW_BITS.to_owned(),
                bits.map(|b| b.to_string()),
            ));
        }
        ExtensionOffer {
            name: NAME.to_owned(),
            params,
        }
    }
}

/// A window size: `8`..=`15`, written without leading zeroes (§7.1.2.1, §7.1.2.2).
fn window_bits(value: Option<&str>) -> Result<u8, ExtensionError> {
    match value {
        Some(v @ ("8" | "9" | "10" | "11" | "12" | "13" | "14" | "15")) => {
            Ok(v.parse().unwrap_or(15))
        }
        Some(_) => Err(ExtensionError::Negotiation(
            "max_window_bits is not a number from 8 to 15",
        )),
        None => Err(ExtensionError::Negotiation(
            "server_max_window_bits has no value",
        )),
    }
}

/// What both directions of one connection use, once negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Agreement {
    /// The window our compressor may use.
    pub(super) send_window_bits: u8,
    /// We reset our compressor after each message.
    pub(super) send_no_context_takeover: bool,
    /// The window the peer compresses with (our decompressor's).
    pub(super) receive_window_bits: u8,
    /// The peer resets its compressor after each message, so we reset our decompressor.
    pub(super) receive_no_context_takeover: bool,
}

/// Server: the answer to one client offer, or why it is declined.
pub(super) fn answer_offer(
    offer: &ExtensionOffer,
    config: &DeflateConfig,
) -> Result<(Agreement, Params), ExtensionError> {
    let offered = Params::parse(offer)?;
    let mut answer = Params {
        // §7.1.1.1: "A server accepts an extension negotiation offer that includes the
        // server_no_context_takeover extension parameter by including the
        // server_no_context_takeover extension parameter in the corresponding extension
        // negotiation response"; a server may also include it unasked.
        server_no_context_takeover: offered.server_no_context_takeover
            || config.server_no_context_takeover,
        // §7.1.1.2: the server may ask the client not to take over its context.
        client_no_context_takeover: offered.client_no_context_takeover
            || config.client_no_context_takeover,
        ..Params::default()
    };
    // §7.1.2.1: when offered, the server "MUST include the server_max_window_bits extension
    // parameter in the extension negotiation response with an equal or smaller value";
    // unasked, it may limit its own window.
    answer.server_max_window_bits = match offered.server_max_window_bits {
        Some(asked) => Some(asked.min(config.server_max_window_bits)),
        None => (config.server_max_window_bits < 15).then_some(config.server_max_window_bits),
    };
    // §7.1.2.2: "If a received extension negotiation offer doesn't have the
    // client_max_window_bits extension parameter, the corresponding extension negotiation
    // response to the offer MUST NOT include the client_max_window_bits extension parameter."
    // When present, the response's value limits the client's window; it is never above the
    // client's hint.
    let receive_window_bits = match offered.client_max_window_bits {
        None => 15,
        Some(hint) => {
            let bits = hint.unwrap_or(15).min(config.client_max_window_bits);
            answer.client_max_window_bits = Some(Some(bits));
            bits
        }
    };
    let agreement = Agreement {
        send_window_bits: answer.server_max_window_bits.unwrap_or(15),
        send_no_context_takeover: answer.server_no_context_takeover,
        receive_window_bits,
        receive_no_context_takeover: answer.client_no_context_takeover,
    };
    Ok((agreement, answer))
}

/// Client: the offer made from `config`.
pub(super) fn offer(config: &DeflateConfig) -> Params {
    Params {
        server_no_context_takeover: config.server_no_context_takeover,
        client_no_context_takeover: config.client_no_context_takeover,
        server_max_window_bits: (config.server_max_window_bits < 15)
            .then_some(config.server_max_window_bits),
        // Always offered, so that the server may limit our window (§7.1.2.2); the value is a
        // hint only below 15.
        client_max_window_bits: Some(
            (config.client_max_window_bits < 15).then_some(config.client_max_window_bits),
        ),
    }
}

/// Client: checks the server's response against the offer made from `config`.
///
/// §5: "If a client receives an extension negotiation response [that is not acceptable] the
/// client MUST _Fail the WebSocket Connection_."
pub(super) fn check_response(
    response: &ExtensionOffer,
    config: &DeflateConfig,
) -> Result<Agreement, ExtensionError> {
    let answer = Params::parse(response)?;
    let offered = offer(config);
    if offered.server_no_context_takeover && !answer.server_no_context_takeover {
        // §7.1.1.1: a server accepts an offer with server_no_context_takeover only by
        // including it in the response.
        return Err(ExtensionError::Negotiation(
            "the response drops the server_no_context_takeover we asked for",
        ));
    }
    match (
        offered.server_max_window_bits,
        answer.server_max_window_bits,
    ) {
        // §7.1.2.1: the response to an offer with server_max_window_bits carries it "with an
        // equal or smaller value".
        (Some(_), None) => {
            return Err(ExtensionError::Negotiation(
                "the response drops the server_max_window_bits we asked for",
            ))
        }
        (Some(asked), Some(got)) if got > asked => {
            return Err(ExtensionError::Negotiation(
                "server_max_window_bits in the response is larger than asked",
            ))
        }
        _ => {}
    }
    let send_window_bits = match answer.client_max_window_bits {
        None => config.client_max_window_bits,
        // §7.1.2.2: in a response the parameter has a value.
        Some(None) => {
            return Err(ExtensionError::Negotiation(
                "client_max_window_bits in the response has no value",
            ))
        }
        Some(Some(bits)) => {
            let hint = offered.client_max_window_bits.flatten().unwrap_or(15);
            if bits > hint {
                return Err(ExtensionError::Negotiation(
                    "client_max_window_bits in the response is larger than our hint",
                ));
            }
            bits
        }
    };
    Ok(Agreement {
        send_window_bits,
        send_no_context_takeover: answer.client_no_context_takeover
            || config.client_no_context_takeover,
        receive_window_bits: answer.server_max_window_bits.unwrap_or(15),
        receive_no_context_takeover: answer.server_no_context_takeover,
    })
}
