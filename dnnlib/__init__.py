# Small utilities shared by every part of Head3D (EG3D-compatible names).
from .util import EasyDict, construct_class_by_name, get_obj_by_name, open_url, Logger, OfflineError
