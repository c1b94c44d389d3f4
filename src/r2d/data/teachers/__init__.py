"""SwaRD teachers: ``template`` (offline, label-driven), ``openai`` (any OpenAI-compatible reasoning
model) and ``hf`` (a local model). Importing this package registers them."""

from r2d.data.teachers import hf_teacher, openai_teacher, template  # noqa: F401  (registration)
from r2d.data.teachers.base import Teacher, TeacherReply, paper_system_prompt

__all__ = ["Teacher", "TeacherReply", "paper_system_prompt"]
