"""Enrolment: add people to a multi-face checkpoint from their own footage (`apb2face enroll`).

`footage` prepares and checks the videos, `replay` finds the base checkpoint's own data again, `enroll` runs the
stages (resumable), `card` measures the result and writes the checkpoint with its model card.
"""

from apb2face.enrollment.config import EnrollConfig
from apb2face.enrollment.enroll import EnrollRequest, EnrollResult, enroll, work_dir

__all__ = ["EnrollConfig", "EnrollRequest", "EnrollResult", "enroll", "work_dir"]
