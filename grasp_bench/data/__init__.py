"""Task data: generated training sets with a planted factor, eval sets, and a chat JSONL loader."""

from grasp_bench.data.chat import ChatDataError, load_chat_jsonl, validate_chat_row
from grasp_bench.data.tasks import TaskData, build_task

__all__ = ["ChatDataError", "TaskData", "build_task", "load_chat_jsonl", "validate_chat_row"]
