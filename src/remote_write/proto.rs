//! The remote-write 1.0 messages (`prometheus.WriteRequest` and its
//! parts), field numbers as in the spec; only the fields 1.0 allows, so no
//! metadata, exemplars or native histograms are ever sent.

/// `prometheus.WriteRequest`
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// the series, each with its samples
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// labels, sorted by name
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// samples in timestamp order
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    /// label name
    #[prost(string, tag = "1")]
    pub name: String,
    /// label value
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    /// value (staleness marker: the NaN with bits 0x7ff0000000000002)
    #[prost(double, tag = "1")]
    pub value: f64,
    /// milliseconds since the epoch
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A request body as sent: the protobuf, snappy block-compressed (the
/// spec forbids the framed format).
pub fn encode(req: &WriteRequest) -> Vec<u8> {
    use prost::Message;
    let raw = req.encode_to_vec();
    // Compressing a byte slice in memory cannot fail but for inputs over
    // ~4 GiB, which a batch of max_samples_per_send cannot reach.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

/// Decodes a request body (receivers in tests, the bench).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    use prost::Message;
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("snappy: {e}"))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| format!("protobuf: {e}"))
}
