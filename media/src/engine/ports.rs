//! RTP/RTCP port pairs from the configured range.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;

use super::MediaError;

/// Hands out pairs of UDP sockets: RTP on an even port, RTCP on the next
/// (RFC 3550 §11). A port someone else holds is skipped. The search starts
/// after the last pair handed out, so a port just released is the last to
/// be used again and stray packets from its old call find no one.
#[derive(Debug)]
pub(crate) struct PortAllocator {
    bind_ip: IpAddr,
    range: RangeInclusive<u16>,
    /// The first even port of the range.
    first: u16,
    /// Pairs in the range.
    pairs: u32,
    /// Index of the pair to try first.
    cursor: u32,
}

impl PortAllocator {
    pub(crate) fn new(bind_ip: IpAddr, range: RangeInclusive<u16>) -> PortAllocator {
        let (start, end) = (u32::from(*range.start()), u32::from(*range.end()));
        let first = start + start % 2;
        // Even ports from `first` whose next port is still in the range.
        let pairs = if end > first {
            (end - first - 1) / 2 + 1
        } else {
            0
        };
        PortAllocator {
            bind_ip,
            range,
            // `first` is at most 65536 only when `pairs` is 0, and then it
            // is never used.
            first: u16::try_from(first).unwrap_or(u16::MAX),
            pairs,
            cursor: 0,
        }
    }

    /// Binds the next free pair.
    pub(crate) fn bind_pair(&mut self) -> Result<(UdpSocket, UdpSocket), MediaError> {
        for step in 0..self.pairs {
            let index = (self.cursor + step) % self.pairs;
            // Within the range, hence within u16.
            let rtp_port = u32::from(self.first) + 2 * index;
            let rtp_port = u16::try_from(rtp_port).unwrap_or(u16::MAX);
            let Some(rtp) = self.bind_one(rtp_port)? else {
                continue;
            };
            let Some(rtcp) = self.bind_one(rtp_port + 1)? else {
                continue;
            };
            self.cursor = (index + 1) % self.pairs;
            return Ok((rtp, rtcp));
        }
        Err(MediaError::PortRangeExhausted {
            range: self.range.clone(),
        })
    }

    /// A bound socket, `None` if the port is taken, an error if binding
    /// fails for any other reason (an address not on this host, a privileged
    /// port), which no other port of the range would fix.
    fn bind_one(&self, port: u16) -> Result<Option<UdpSocket>, MediaError> {
        let address = SocketAddr::new(self.bind_ip, port);
        match UdpSocket::bind(address) {
            Ok(socket) => Ok(Some(socket)),
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => Ok(None),
            Err(source) => Err(MediaError::Bind { address, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn localhost() -> IpAddr {
        IpAddr::from([127, 0, 0, 1])
    }

    #[test]
    fn pairs_start_on_an_even_port_and_fit_the_range() {
        for (range, first, pairs) in [
            (40_000..=40_009, 40_000, 5),
            (40_001..=40_009, 40_002, 4),
            (40_001..=40_002, 40_002, 0),
            (40_000..=40_000, 40_000, 0),
            (65_534..=65_535, 65_534, 1),
            (65_535..=65_535, u16::MAX, 0),
            (RangeInclusive::new(40_010, 40_000), 40_010, 0),
        ] {
            let allocator = PortAllocator::new(localhost(), range.clone());
            assert_eq!(
                (allocator.first, allocator.pairs),
                (first, pairs),
                "{range:?}"
            );
        }
    }

    #[test]
    fn an_empty_range_is_exhausted_at_once() {
        let mut allocator = PortAllocator::new(localhost(), 40_001..=40_002);
        assert!(matches!(
            allocator.bind_pair(),
            Err(MediaError::PortRangeExhausted { .. })
        ));
    }
}
