//! burn's `TensorData` decoded from a checkpoint's bytes (the patched burn-backend,
//! `vendor/README.md`): every element type comes back exactly, lent bytes are copied once into
//! a buffer aligned to their element (so burn-ndarray adopts it as it is), and every other input
//! takes upstream's path.

use burn::tensor::{bf16, f16, BoolStore, Bytes, DType, TensorData};

/// One tensor of each element type a checkpoint can hold, with the element's size.
fn one_of_each() -> Vec<(TensorData, usize)> {
    vec![
        (TensorData::new(vec![1.5f64, -2.25, 1e300], [3]), 8),
        (TensorData::new(vec![1.5f32, -2.25, 3e30, 0.1], [2, 2]), 4),
        (
            TensorData::new(vec![f16::from_f32(1.5), f16::from_f32(-0.25)], [2]),
            2,
        ),
        (TensorData::new(vec![bf16::from_f32(3.0)], [1]), 2),
        (TensorData::new(vec![i64::MIN, 7, i64::MAX], [3]), 8),
        (TensorData::new(vec![i32::MIN, -1, 9], [3]), 4),
        (TensorData::new(vec![i16::MIN, 5], [2]), 2),
        (TensorData::new(vec![i8::MIN, 3, i8::MAX], [3]), 1),
        (TensorData::new(vec![u64::MAX, 0], [2]), 8),
        (TensorData::new(vec![u32::MAX, 1, 2], [3]), 4),
        (TensorData::new(vec![u16::MAX], [1]), 2),
        (TensorData::new(vec![0u8, 255, 17], [3]), 1),
        (TensorData::new(vec![true, false, true], [3]), 1),
        (TensorData::new(Vec::<f32>::new(), [0]), 4),
    ]
}

fn assert_same(decoded: &TensorData, expected: &TensorData) {
    assert_eq!(decoded.dtype, expected.dtype);
    assert_eq!(decoded.shape, expected.shape);
    assert_eq!(
        &decoded.bytes[..],
        &expected.bytes[..],
        "{:?}",
        expected.dtype
    );
}

#[test]
fn every_element_type_decodes_exactly_into_a_buffer_of_its_alignment() {
    for (data, size) in one_of_each() {
        // As a checkpoint holds it (fields by name), and as a tuple.
        for encoded in [
            rmp_serde::to_vec_named(&data).unwrap(),
            rmp_serde::to_vec(&data).unwrap(),
        ] {
            let decoded: TensorData = rmp_serde::from_slice(&encoded).unwrap();
            assert_same(&decoded, &data);
            assert_eq!(decoded.bytes.align(), size, "{:?}", data.dtype);
            // Read one byte past an aligned start, so the lent bytes are misaligned.
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&encoded);
            let decoded: TensorData = rmp_serde::from_slice(&shifted[1..]).unwrap();
            assert_same(&decoded, &data);
            assert_eq!(decoded.bytes.align(), size, "{:?}", data.dtype);
        }
    }
}

#[test]
fn a_decoded_float_tensor_becomes_a_vec_without_a_copy() {
    let data = TensorData::new(
        (0..1000).map(|i| i as f32 * 0.5).collect::<Vec<_>>(),
        [1000],
    );
    let encoded = rmp_serde::to_vec_named(&data).unwrap();
    let decoded: TensorData = rmp_serde::from_slice(&encoded).unwrap();
    let buffer = decoded.bytes.as_ptr();
    // What burn-ndarray's `from_data` does with a tensor it owns.
    let values = decoded.into_vec::<f32>().unwrap();
    assert_eq!(
        values.as_ptr().cast::<u8>(),
        buffer,
        "the buffer was copied"
    );
    assert_eq!(values, data.to_vec::<f32>().unwrap());
}

#[test]
fn bytes_that_are_not_lent_take_the_upstream_path() {
    for (data, _) in one_of_each() {
        // A reader owns what it reads: the bytes come as a transient slice.
        let encoded = rmp_serde::to_vec_named(&data).unwrap();
        let decoded: TensorData = rmp_serde::from_read(encoded.as_slice()).unwrap();
        assert_same(&decoded, &data);
        assert_eq!(decoded.bytes.align(), 16, "{:?}", data.dtype);
    }
    // A sequence of numbers (a self-describing format without a byte type).
    let data = TensorData::new(vec![1.5f32, -2.0], [2]);
    let json = serde_json::to_string(&data).unwrap();
    let decoded: TensorData = serde_json::from_str(&json).unwrap();
    assert_same(&decoded, &data);
}

#[test]
fn a_length_that_is_not_whole_elements_still_decodes_as_upstream() {
    // Five bytes declared as f32: not for this decoder to judge (the checkpoint's scan refuses
    // such a tensor before decoding); it keeps the bytes as upstream did.
    let odd = TensorData {
        bytes: Bytes::from_bytes_vec(vec![1, 2, 3, 4, 5]),
        shape: vec![1].into(),
        dtype: DType::F32,
    };
    let decoded: TensorData =
        rmp_serde::from_slice(&rmp_serde::to_vec_named(&odd).unwrap()).unwrap();
    assert_same(&decoded, &odd);
    assert_eq!(decoded.bytes.align(), 16);
    let bools = TensorData {
        bytes: Bytes::from_bytes_vec(vec![1, 0, 0, 0, 0, 0, 0, 0]),
        shape: vec![2].into(),
        dtype: DType::Bool(BoolStore::U32),
    };
    let decoded: TensorData =
        rmp_serde::from_slice(&rmp_serde::to_vec_named(&bools).unwrap()).unwrap();
    assert_same(&decoded, &bools);
    assert_eq!(decoded.bytes.align(), 4);
}

#[test]
fn a_lent_buffer_stands_for_the_empty_byte_string_at_its_address_and_nothing_else() {
    use std::collections::BTreeMap;
    let data = TensorData::new(vec![1.5f32, -2.0, 3.25, 4.0], [2, 2]);
    // As a load's skeleton holds a tensor read apart: an empty byte string in place of its bytes.
    let stand_in = TensorData {
        bytes: Bytes::from_elems(Vec::<u8>::new()),
        shape: data.shape.clone(),
        dtype: data.dtype,
    };
    let encoded = rmp_serde::to_vec_named(&stand_in).unwrap();
    let at = encoded
        .windows(2)
        .position(|w| w == [0xc4, 0x00])
        .expect("an empty byte string")
        + 2;
    let key = encoded[at..].as_ptr() as usize;
    let decode = || rmp_serde::from_slice::<TensorData>(&encoded).unwrap();
    let typed = || Bytes::from_elems(data.to_vec::<f32>().unwrap());

    // Registered at the empty string's address: the buffer itself becomes the tensor's.
    let buffer = typed();
    let address = buffer.as_ptr();
    let (decoded, left) =
        burn_backend::decode_with_lent_buffers(BTreeMap::from([(key, buffer)]), decode);
    assert!(left.is_empty(), "the buffer was taken");
    assert_eq!(decoded.bytes.as_ptr(), address, "taken without a copy");
    assert_same(&decoded, &data);

    // Registered elsewhere: the empty string decodes as it is and the buffer comes back.
    let (decoded, left) =
        burn_backend::decode_with_lent_buffers(BTreeMap::from([(key + 1, typed())]), decode);
    assert_eq!(decoded.bytes.len(), 0);
    assert_eq!(left.len(), 1);

    // A buffer not aligned to the element is copied once into one that is.
    let bytes_only = Bytes::from_elems(data.as_bytes().to_vec());
    let (decoded, _) =
        burn_backend::decode_with_lent_buffers(BTreeMap::from([(key, bytes_only)]), decode);
    assert_same(&decoded, &data);
    assert_eq!(decoded.bytes.align(), 4);

    // Outside the call nothing is lent, also after a decoding that panicked inside it.
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        burn_backend::decode_with_lent_buffers(BTreeMap::from([(key, typed())]), || {
            panic!("the decoding failed")
        })
    }));
    assert!(unwound.is_err());
    assert_eq!(decode().bytes.len(), 0, "no buffer is lent any more");
}
