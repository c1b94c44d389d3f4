"""SwaRD teachers: ``template`` (offline, label-driven), ``dataset`` (existing traces from a file,
e.g. STAR-1), ``openai`` (any OpenAI-compatible reasoning model) and ``hf`` (a local model). Importing this package registers them."""

from r2d.data.teachers import dataset, hf_teacher, openai_teacher, template  # noqa: F401  (registration)
from r2d.data.teachers.base import Teacher, TeacherReply, paper_system_prompt

__all__ = ["Teacher", "TeacherReply", "paper_system_prompt"]
