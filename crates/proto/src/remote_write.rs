//! Prometheus remote write 1.0 (`prometheus.WriteRequest` of `prompb/remote.proto`), the
//! part the ruler sends: series with labels and samples, snappy block-compressed.

use prost::Message;

/// `prometheus.WriteRequest` (metadata, field 3, is not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// Sorted by name, `__name__` included.
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// Oldest first.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// One series' labels (any order) and samples `(ms, value)`.
pub type SeriesSamples = (Vec<(String, String)>, Vec<(i64, f64)>);

/// The HTTP body of a remote-write request: the protobuf, snappy block-compressed. Labels
/// are sorted by name, as receivers require.
pub fn encode_write_request(series: Vec<SeriesSamples>) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(mut labels, samples)| {
                labels.sort();
                TimeSeries {
                    labels: labels
                        .into_iter()
                        .map(|(name, value)| Label { name, value })
                        .collect(),
                    samples: samples
                        .into_iter()
                        .map(|(timestamp, value)| Sample { value, timestamp })
                        .collect(),
                }
            })
            .collect(),
    };
    snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compression of an in-memory buffer")
}

/// Decodes a body made by [`encode_write_request`] (for tests and receivers).
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| e.to_string())?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_sorts_labels() {
        let body = encode_write_request(vec![(
            vec![
                ("app".into(), "x".into()),
                ("__name__".into(), "app:lines".into()),
            ],
            vec![(1_000, 2.5), (2_000, 3.0)],
        )]);
        let req = decode_write_request(&body).unwrap();
        let ts = &req.timeseries[0];
        let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "app"]);
        assert_eq!(
            ts.samples,
            [
                Sample {
                    value: 2.5,
                    timestamp: 1_000
                },
                Sample {
                    value: 3.0,
                    timestamp: 2_000
                }
            ]
        );
    }

    #[test]
    fn wire_bytes_match_the_protobuf_encoding() {
        // Label{name:"a", value:"b"} in TimeSeries field 1, in WriteRequest field 1;
        // Sample{value:1.0, timestamp:5} in field 2.
        let req = decode_write_request(&encode_write_request(vec![(
            vec![("a".into(), "b".into())],
            vec![(5, 1.0)],
        )]))
        .unwrap();
        let bytes = req.encode_to_vec();
        let mut want = vec![
            0x0a, 21, 0x0a, 6, 0x0a, 1, b'a', 0x12, 1, b'b', 0x12, 11, 0x09,
        ];
        want.extend(1.0f64.to_le_bytes());
        want.extend([0x10, 5]);
        assert_eq!(bytes, want);
    }
}
