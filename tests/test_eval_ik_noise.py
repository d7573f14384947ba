"""The IK noise table (eval/ik_noise.py): both methods agree on clean joints and differ on noisy ones."""

from fasthmr_lib.body import hybrik as H
from fasthmr_lib.eval.ik_noise import ik_noise_table


def test_ik_noise_table(fake_body):
    df = ik_noise_table(H.HybrIKBody.from_smpl(fake_body), n=64, noises_m=(0.0, 0.02), seed=1)
    assert list(df.method) == list(H.IK_METHODS) * 2 and (df.poses == 64).all()
    clean, noisy = df[df.noise_mm == 0], df[df.noise_mm == 20]
    assert (clean.joint_error_mm < 0.1).all() and (clean.rotation_error_deg < 0.1).all()
    assert (noisy.joint_error_mm > 5).all() and noisy.joint_error_mm.nunique() == 2
