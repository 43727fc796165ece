//! Loki push request bodies (protobuf + snappy), built before any clock starts.
//!
//! Streams are dealt to clients round-robin in order of first appearance and never move,
//! so each client sends a stream's entries in time order, as an agent would.

use silt_model::{Entry, Labels};
use silt_proto::{encode_push_protobuf, PushStream};
use std::collections::BTreeMap;

pub struct BodyBuilder {
    batch_bytes: usize,
    streams: Vec<(Labels, usize)>,
    /// Per client: entries by stream waiting for the next body, and their raw bytes.
    pending: Vec<(BTreeMap<usize, Vec<Entry>>, usize)>,
    out: Vec<Vec<Vec<u8>>>,
}

impl BodyBuilder {
    /// `batch_bytes`: raw bytes (lines + structured metadata) per request.
    pub fn new(clients: usize, batch_bytes: usize) -> BodyBuilder {
        let clients = clients.max(1);
        BodyBuilder {
            batch_bytes: batch_bytes.max(1),
            streams: Vec::new(),
            pending: (0..clients).map(|_| (BTreeMap::new(), 0)).collect(),
            out: vec![Vec::new(); clients],
        }
    }

    /// Registers a stream; returns its id for [`BodyBuilder::push`].
    pub fn add_stream(&mut self, labels: Labels) -> usize {
        let id = self.streams.len();
        self.streams.push((labels, id % self.out.len()));
        id
    }

    pub fn push(&mut self, stream: usize, e: Entry) {
        let client = self.streams[stream].1;
        let (batch, size) = &mut self.pending[client];
        *size += e.line.len() + e.metadata.byte_size();
        batch.entry(stream).or_default().push(e);
        if *size >= self.batch_bytes {
            self.seal(client);
        }
    }

    fn seal(&mut self, client: usize) {
        // Taking the pair also resets the byte count.
        let (batch, _) = std::mem::take(&mut self.pending[client]);
        if batch.is_empty() {
            return;
        }
        let streams: Vec<PushStream> = batch
            .into_iter()
            .map(|(id, entries)| PushStream {
                labels: self.streams[id].0.clone(),
                entries,
            })
            .collect();
        self.out[client].push(encode_push_protobuf(&streams));
    }

    /// Seals the partial batches; bodies per client in send order.
    pub fn finish(mut self) -> Vec<Vec<Vec<u8>>> {
        for c in 0..self.out.len() {
            self.seal(c);
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_proto::{decode_push, DecodeLimits};

    #[test]
    fn streams_stay_with_one_client_in_order() {
        let mut b = BodyBuilder::new(2, 100);
        let ids: Vec<usize> = (0..3)
            .map(|i| b.add_stream(Labels::from_pairs([("app", format!("a{i}"))])))
            .collect();
        for t in 0..60 {
            let e = Entry {
                ts: t,
                line: format!("line {t:03}"),
                metadata: Labels::default(),
            };
            b.push(ids[t as usize % 3], e);
        }
        let out = b.finish();
        assert_eq!(out.len(), 2);
        let mut seen = 0;
        for (client, bodies) in out.iter().enumerate() {
            assert!(bodies.len() > 1, "100-byte batches split 60 lines");
            let mut last: BTreeMap<String, i64> = BTreeMap::new();
            for body in bodies {
                let req = decode_push(body, None, None, false, &DecodeLimits::default()).unwrap();
                for s in req.streams {
                    let app = s.labels.get("app").unwrap().to_string();
                    // a0 and a2 go to client 0, a1 to client 1.
                    assert_eq!(client, usize::from(app == "a1"));
                    for e in s.entries {
                        assert!(last.get(&app).is_none_or(|&p| p < e.ts));
                        last.insert(app.clone(), e.ts);
                        seen += 1;
                    }
                }
            }
        }
        assert_eq!(seen, 60);
    }
}
