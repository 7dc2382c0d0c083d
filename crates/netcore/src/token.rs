//! What a `mio::Token` stands for: the waker, a listener or UDP socket, or a connection
//! (slot and generation, so an event for a closed connection never reaches the one that
//! reuses its slot).

use mio::Token;

use crate::id::ConnId;

/// The meaning of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Waker,
    /// A listener or a UDP socket: its key in the loop's source slab.
    Source(usize),
    Conn(ConnId),
}

const WAKER: usize = usize::MAX;
/// Source tokens set this bit with a zero generation; connection tokens keep their slot in
/// the low 31 bits and their generation in the high 32.
const SOURCE_BIT: usize = 1 << 31;

/// The largest slot a connection or source may have: one loop holds at most 2^31 of each.
pub(crate) const MAX_INDEX: usize = SOURCE_BIT - 1;

// The codec packs a generation into the high half of a token.
const _: () = assert!(usize::BITS >= 64, "netcore needs 64-bit tokens");

pub(crate) fn encode(target: Target) -> Token {
    Token(match target {
        Target::Waker => WAKER,
        Target::Source(key) => SOURCE_BIT | key,
        Target::Conn(id) => ((id.gen as usize) << 32) | id.index,
    })
}

pub(crate) fn decode(token: Token) -> Target {
    let raw = token.0;
    if raw == WAKER {
        Target::Waker
    } else if raw & SOURCE_BIT != 0 && raw >> 32 == 0 {
        Target::Source(raw & MAX_INDEX)
    } else {
        Target::Conn(ConnId {
            index: raw & MAX_INDEX,
            gen: (raw >> 32) as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_comes_back_as_it_went() {
        let targets = [
            Target::Waker,
            Target::Source(0),
            Target::Source(MAX_INDEX),
            Target::Conn(ConnId { index: 0, gen: 0 }),
            Target::Conn(ConnId { index: 5, gen: 1 }),
            Target::Conn(ConnId {
                index: MAX_INDEX,
                gen: u32::MAX,
            }),
            // A generation whose low bit lands where a source's marker bit would be, had the
            // codec not kept generations in the high half.
            Target::Conn(ConnId {
                index: 3,
                gen: 1 << 31,
            }),
        ];
        for target in targets {
            assert_eq!(decode(encode(target)), target, "{target:?}");
        }
    }

    #[test]
    fn the_waker_is_no_connection() {
        assert_eq!(decode(Token(usize::MAX)), Target::Waker);
        assert_ne!(
            encode(Target::Conn(ConnId {
                index: MAX_INDEX,
                gen: u32::MAX
            })),
            Token(usize::MAX)
        );
    }
}
