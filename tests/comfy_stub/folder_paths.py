"""Stub of ComfyUI's folder_paths.py (see README.md): model folders, output folder, numbered save paths."""
import os
import re
import tempfile

base_path = os.environ.get("CCL_STUB_BASE", tempfile.mkdtemp(prefix="ccl_stub_"))
models_dir = os.path.join(base_path, "models")
output_directory = os.path.join(base_path, "output")
supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {"diffusion_models": ([os.path.join(models_dir, "diffusion_models")], supported_pt_extensions),
                          "vae": ([os.path.join(models_dir, "vae")], supported_pt_extensions)}


def set_base(path):
    """Test helper (not in ComfyUI): point every folder at a new base directory."""
    global base_path, models_dir, output_directory
    base_path, models_dir, output_directory = path, os.path.join(path, "models"), os.path.join(path, "output")
    for name in list(folder_names_and_paths):
        folder_names_and_paths[name] = ([os.path.join(models_dir, name)], folder_names_and_paths[name][1])


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    paths, exts = folder_names_and_paths.setdefault(folder_name, ([], set()))
    if full_folder_path not in paths:
        paths.insert(0, full_folder_path) if is_default else paths.append(full_folder_path)


def get_folder_paths(folder_name):
    return list(folder_names_and_paths[folder_name][0])


def get_filename_list(folder_name):
    paths, exts = folder_names_and_paths[folder_name]
    out = []
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for f in files:
                if not exts or os.path.splitext(f)[1].lower() in exts:
                    out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out)


def get_full_path(folder_name, filename):
    if folder_name not in folder_names_and_paths:
        return None
    for root in folder_names_and_paths[folder_name][0]:
        path = os.path.join(root, filename)
        if os.path.isfile(path):
            return path
    return None


def get_full_path_or_raise(folder_name, filename):
    path = get_full_path(folder_name, filename)
    if path is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return path


def get_output_directory():
    return output_directory


def set_output_directory(path):
    global output_directory
    output_directory = path


def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    """(full_output_folder, filename, counter, subfolder, filename_prefix); counter = max existing + 1."""
    subfolder, filename = os.path.split(os.path.normpath(filename_prefix))
    full = os.path.join(output_dir, subfolder)
    if os.path.commonpath((os.path.abspath(output_dir), os.path.abspath(full))) != os.path.abspath(output_dir):
        raise ValueError("Saving outside the output folder is not allowed.")
    os.makedirs(full, exist_ok=True)
    pat = re.compile(re.escape(filename) + r"_(\d{5})_")
    nums = [int(m.group(1)) for f in os.listdir(full) if (m := pat.match(f))]
    return full, filename, max(nums, default=0) + 1, subfolder, filename_prefix
