"""SavedModel directories: read and select (``reader``), write atomically (``writer``).
Protobuf only: nothing here imports TensorFlow."""

from neuroncli.savedmodel.reader import (
    DEFAULT_SIGNATURE, SERVE, LoadedSavedModel, is_tf2, open_saved_model_view, read_saved_model,
    saved_model_file, select_meta_graph, select_signature, tag_sets,
)
from neuroncli.savedmodel.writer import (
    atomic_output, check_output_path, copy_model_files, write_saved_model,
)

__all__ = ["DEFAULT_SIGNATURE", "SERVE", "LoadedSavedModel", "is_tf2", "read_saved_model",
           "open_saved_model_view", "saved_model_file",
           "select_meta_graph", "select_signature", "tag_sets", "atomic_output",
           "check_output_path", "copy_model_files", "write_saved_model"]
